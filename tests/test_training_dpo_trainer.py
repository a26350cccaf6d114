"""The DPO trainer on a tiny codec and metric judges: it trains, refreshes its buffer while training, resumes
exactly, keeps the bitstream when the encoder is frozen, and the reward / win-rate helpers give known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
from vlic.codec.checkpoint import Checkpoint, build_prior, load
from vlic.codec.image_codec import ImageCodec
from vlic.eval.winrate import scores_from_preferences, win_rate
from vlic.judges.cache import VerdictCache
from vlic.judges.factory import make_judge
from vlic.training.buffer import Candidate, Judgement
from vlic.training.dpo.trainer import DPOConfig, post_trained_checkpoint, train_dpo
from vlic.training.reward import UnanimousReward

TINY = CodecConfig(fsq_levels=(5, 3), downsample=16, flow_widths=(16, 16), tile=32, encoder_width=16,
                   cond_channels=8, prior_dim=32, prior_layers=1, prior_block=8)


@pytest.fixture(scope="module")
def tiny() -> Checkpoint:
    torch.manual_seed(0)
    model = DiffusionCodec(TINY).eval()
    # the flow's last layer starts at zero (one-step decoding = the mean image, whatever the noise): give it the
    # noise-dependent output of a trained decoder, so two seeds draw two different samples
    torch.nn.init.normal_(model.flow.out[-1].weight, std=0.05)
    return Checkpoint(model, build_prior(TINY).eval(), rate="tiny")


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    out = []
    for k in range(3):
        base = np.stack([np.sin(6 * xx + k), np.cos(5 * yy - k), np.sin(4 * (xx + yy))], -1) * 0.4 + 0.5
        out.append(np.clip((base + 0.1 * rng.standard_normal(base.shape)) * 255, 0, 255).astype(np.uint8))
    return out


def closer_wins(c: Candidate) -> Judgement:
    """A fast deterministic toy judge: the reconstruction with the lower MSE to the original wins."""
    da = float(((c.a.astype(float) - c.original) ** 2).mean())
    db = float(((c.b.astype(float) - c.original) ** 2).mean())
    if da == db:
        return Judgement(None, "tie")
    return Judgement("a" if da < db else "b", rating=db - da)


def _cfg(**kw) -> DPOConfig:
    base = dict(steps=6, batch_size=2, lr=1e-3, warmup=1, beta=500.0, refresh_every=2, refresh_size=4, min_pairs=2,
                sample_steps=1, judge_workers=0, checkpoint_every=3, buffer_capacity=16, threads=1)
    return DPOConfig(**{**base, **kw})


def test_trainer_runs_refreshes_during_training_and_learns_the_preferences(tiny, photos):
    res = train_dpo(tiny, photos, closer_wins, _cfg(judge_workers=1), progress=False)
    curves = res.curves
    assert [c["step"] for c in curves] == list(range(6))
    assert res.refreshes == 3                      # the first fill + refreshes at steps 2 and 4
    assert res.stats["judged"] == 12 and res.stats["accepted"] + sum(res.stats["discarded"].values()) == 12
    judged = [c["judged"] for c in curves]         # new verdicts arrived between training steps
    assert judged[-1] > judged[0]
    assert {r["refresh"] for r in res.judge_log} == {0, 1, 2}
    assert curves[0]["dpo_loss"] == pytest.approx(np.log(2), abs=1e-6)   # policy = reference at step 0
    assert np.mean([c["implicit_accuracy"] for c in curves[1:]]) > 0.5     # it fits winners better than losers
    before = dict(tiny.model.named_parameters())
    changed = [n for n, p in res.model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("flow.") for n in changed) and any(n.startswith("encoder.") for n in changed)


def test_resume_from_checkpoint_gives_the_same_state(tiny, photos, tmp_path):
    full = train_dpo(tiny, photos, closer_wins, _cfg(), progress=False)
    # an interrupted run: 3 steps (a checkpoint at step 3), then a new call continues from the saved state
    part = train_dpo(tiny, photos, closer_wins, _cfg(), resume_dir=tmp_path, progress=False, stop_at=3)
    state = torch.load(tmp_path / "rank0" / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 3 and len(state["buffer"]["pairs"]) > 0 and len(part.curves) == 3
    resumed = train_dpo(tiny, photos, closer_wins, _cfg(), resume_dir=tmp_path, progress=False)
    assert resumed.resumed_from == 3
    for (n, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    assert [c["loss"] for c in resumed.curves] == [c["loss"] for c in full.curves]
    assert resumed.stats["judged"] == full.stats["judged"]
    # a different configuration does not resume
    other = train_dpo(tiny, photos, closer_wins, _cfg(beta=100.0), resume_dir=tmp_path, progress=False)
    assert other.resumed_from == 0


def test_judge_threads_do_not_change_the_run(tiny, photos):
    """Pairs join the buffer at steps fixed in advance, so a run with judge threads is the run with inline judging."""
    def slow_closer_wins(c: Candidate) -> Judgement:
        import time

        time.sleep(0.01)
        return closer_wins(c)

    inline = train_dpo(tiny, photos, closer_wins, _cfg(steps=8, merge_after=1), progress=False)
    threaded = train_dpo(tiny, photos, slow_closer_wins, _cfg(steps=8, merge_after=1, judge_workers=3), progress=False)
    for (n, a), (_, b) in zip(inline.model.state_dict().items(), threaded.model.state_dict().items()):
        assert torch.equal(a, b), n
    assert [c["loss"] for c in inline.curves] == [c["loss"] for c in threaded.curves]
    assert [c["buffer"] for c in inline.curves] == [c["buffer"] for c in threaded.curves]
    with pytest.raises(ValueError, match="merge_after"):
        train_dpo(tiny, photos, closer_wins, _cfg(merge_after=-1), progress=False)


def test_frozen_encoder_keeps_the_bitstream(tiny, photos, tmp_path):
    res = train_dpo(tiny, photos, closer_wins, _cfg(train_encoder=False, steps=3), progress=False)
    for n, p in res.model.encoder.named_parameters():
        assert torch.equal(p, dict(tiny.model.encoder.named_parameters())[n])
    path = post_trained_checkpoint(tiny, res, _cfg(train_encoder=False, steps=3)).save(tmp_path / "dpo.safetensors")
    dpo, base = ImageCodec(load(path)), ImageCodec(tiny)
    a, b = base.compress(photos[0]), dpo.compress(photos[0])
    from vlic.codec.bitstream import parse

    assert a.bpp == b.bpp and parse(a.data).payload == parse(b.data).payload   # only the model fingerprint differs
    assert load(path).training["post_training"]["base_fingerprint"] == tiny.fingerprint


def test_encoder_learning_rate_scale_zero_keeps_the_encoder(tiny, photos):
    res = train_dpo(tiny, photos, closer_wins, _cfg(encoder_lr_scale=0.0, steps=2), progress=False)
    enc = dict(tiny.model.encoder.named_parameters())
    assert all(torch.equal(p, enc[n]) for n, p in res.model.encoder.named_parameters())
    assert not torch.equal(res.model.flow.inp.weight, tiny.model.flow.inp.weight)


def test_dpo_times_at_the_samplers_steps(tiny, photos):
    res = train_dpo(tiny, photos, closer_wins, _cfg(dpo_times="sampler", sample_steps=2, steps=2), progress=False)
    assert res.curves[0]["dpo_loss"] == pytest.approx(np.log(2), abs=1e-6) and len(res.curves) == 2
    with pytest.raises(ValueError, match="dpo_times"):
        train_dpo(tiny, photos, closer_wins, _cfg(dpo_times="sometimes"), progress=False)
    with pytest.raises(ValueError, match="dpo_path"):
        train_dpo(tiny, photos, closer_wins, _cfg(dpo_path="elsewhere"), progress=False)


def test_one_step_sampler_times_are_refused_in_one_line(tiny, photos):
    """Where the path starts, winner and loser share their noisy input: the only time of a 1-step sampler is refused
    — pure noise at t = 1, and x_t₀ of a sampler that starts below 1 on the sampler's path."""
    import dataclasses

    with pytest.raises(ValueError, match="t = 1,.*no preference") as e:
        train_dpo(tiny, photos, closer_wins, _cfg(dpo_times="sampler", sample_steps=1), progress=False)
    assert "\n" not in str(e.value)
    started = Checkpoint(DiffusionCodec(dataclasses.replace(TINY, sample_start=0.5)), tiny.prior, rate="tiny")
    started.model.load_state_dict(tiny.model.state_dict())
    with pytest.raises(ValueError, match="t = 0.5,.*no preference"):
        train_dpo(started, photos, closer_wins, _cfg(dpo_times="sampler", sample_steps=1), progress=False)
    # on the data path, x_t at t₀ = 0.5 still shows the sample: accepted
    res = train_dpo(started, photos, closer_wins, _cfg(dpo_times="sampler", sample_steps=1, steps=1, dpo_path="data"),
                    progress=False)
    assert len(res.curves) == 1


def test_the_sampler_path_starts_where_the_sampler_starts_and_its_velocity_lands_on_the_sample(tiny):
    """``noised``: at t₀ the state is the sampler's start x_t₀ = (1 − t₀)·μ + t₀·ε whatever the sample; one Euler step
    of the target velocity from any t lands on the sample; with t₀ = 1 it is the data path (1 − t)·x + t·ε."""
    import dataclasses

    from vlic.codec.sampling import start_point
    from vlic.training.dpo.trainer import noised

    g = torch.Generator().manual_seed(0)
    x, eps = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.randn(2, 3, 32, 32, generator=g)
    model = DiffusionCodec(dataclasses.replace(TINY, sample_start=0.3)).eval()
    with torch.no_grad():
        cond = model.code_condition(x)
        t0, start = model.sampler_start(cond, eps)
    assert t0 == pytest.approx(0.3) and torch.allclose(start, start_point(cond[1], eps, 0.3))
    t = torch.tensor([0.3, 0.1]).view(2, 1, 1, 1)
    x_t, v = noised(x, start, t, t0)
    assert torch.allclose(x_t[0], start[0]) and not torch.allclose(x_t[1], start[1])
    assert torch.allclose(x_t - t * v, x, atol=1e-6)
    x_t1, v1 = noised(x, eps, t, 1.0)
    assert torch.allclose(x_t1, (1 - t) * x + t * eps) and torch.allclose(v1, eps - x)


def test_frozen_latent_decoder_keeps_the_mean_head(tiny, photos):
    res = train_dpo(tiny, photos, closer_wins, _cfg(latent_decoder_lr_scale=0.0, steps=3), progress=False)
    lat = dict(tiny.model.latent_decoder.named_parameters())
    assert all(torch.equal(p, lat[n]) for n, p in res.model.latent_decoder.named_parameters())
    assert not torch.equal(res.model.flow.inp.weight, tiny.model.flow.inp.weight)


def test_unanimous_reward_keeps_only_agreeing_pairs_and_uses_the_cache(photos):
    ref = photos[0]
    near = np.clip(ref.astype(int) + 3, 0, 255).astype(np.uint8)
    far = np.clip(ref.astype(int) + 40, 0, 255).astype(np.uint8)
    cache = VerdictCache(None)
    reward = UnanimousReward([make_judge("haarpsi"), make_judge("ms_ssim")], cache, seeds=3, orders=2)
    res = reward.vote([ref, ref, ref], [near, far, near], [far, near, near])
    assert res.label.tolist() == [-1, 1, 0] and res.reason == [None, None, "tie"]
    assert res.calls == 6                   # metrics: one seed, one order per pair and judge
    j = reward(Candidate(ref, far, near))
    assert j.winner == "b" and j.calls == 0  # every verdict came from the cache
    assert reward.calls == 6 and len(cache) == 6


def test_win_rate_counts_ties_half_and_bootstraps_by_cluster():
    s = scores_from_preferences([-1, -2, 1, 0, np.nan], system_is="a")
    assert s.tolist() == [1.0, 1.0, 0.0, 0.5, 0.5]
    assert scores_from_preferences([-1, 1], system_is="b").tolist() == [0.0, 1.0]
    w = win_rate([1, 1, 1, 0] * 25, n_boot=500)
    assert w.winrate == 0.75 and w.ci_low < 0.75 < w.ci_high and w.ci_high - w.ci_low < 0.25
    # four copies (seeds) of each of 25 patches: the interval is that of 25 patches, not 100 comparisons
    clustered = win_rate(np.repeat(([1, 1, 1, 0] * 7)[:25], 4), clusters=np.repeat(np.arange(25), 4), n_boot=500)
    assert clustered.clusters == 25 and (clustered.ci_high - clustered.ci_low) > (w.ci_high - w.ci_low)
    with pytest.raises(ValueError, match="scores"):
        win_rate([2.0])


def _heldout_psnr_winrate(policy, base, photos, seeds=(0, 1, 2, 3)) -> float:
    """Share of (photo, seed) where ``policy`` decodes the base's codes closer to the photo (PSNR) than ``base``, with
    the same noise; ties count half."""
    from vlic.codec.quality import psnr
    from vlic.codec.sampling import sample
    from vlic.images import to_pixels, to_tensor

    wins = []
    with torch.no_grad():
        for px in photos:
            codes = base.encode(to_tensor(px))
            for seed in seeds:
                a, b = (to_pixels(sample(m, *m.condition_from_codes(codes), steps=2, seed=seed, tile=None))[0]
                        for m in (policy, base))
                pa, pb = psnr(px, a), psnr(px, b)
                wins.append(0.5 if pa == pb else float(pa > pb))
    return float(np.mean(wins))


def test_dpo_learns_the_psnr_oracle_and_the_flipped_oracle_goes_the_other_way(tiny, photos):
    """The oracle check of the recipe, on held-out photos: DPO with PSNR as the reward must decode the same codes
    closer to the originals than the base decoder, and with the preference flipped, further."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    heldout = [np.clip((np.stack([np.cos(3 * xx * k), np.sin(7 * yy + k), np.cos(2 * (xx - yy))], -1) * 0.4 + 0.5
                        + 0.1 * rng.standard_normal((64, 64, 3))) * 255, 0, 255).astype(np.uint8) for k in (1, 2)]
    cfg = _cfg(steps=24, batch_size=4, lr=1e-4, refresh_every=6, refresh_size=8, min_pairs=4, sample_steps=2,
               dpo_times="sampler", encoder_lr_scale=0.0, latent_decoder_lr_scale=0.0, flow_weight=0.0)
    rates = {}
    for judge in ("psnr", "flipped(psnr)"):
        reward = UnanimousReward([make_judge(judge)], VerdictCache(None), seeds=1, orders=1)
        res = train_dpo(tiny, photos, reward, cfg, progress=False)
        rates[judge] = _heldout_psnr_winrate(res.model, tiny.model, heldout)
    assert rates["psnr"] > 0.5 > rates["flipped(psnr)"], rates


def _velocity_gap(policy, base, photos, t: float) -> float:
    """Mean |v_policy − v_base| on the base's sampler states at time ``t`` (the same codes, noise and state)."""
    from vlic.codec.sampling import noise_like
    from vlic.images import to_tensor

    gaps = []
    with torch.no_grad():
        for k, px in enumerate(photos):
            x = to_tensor(px)
            cond = base.condition(base.quantized(x))
            t0, start = base.sampler_start(cond, noise_like(x, k))
            state = start if t >= t0 else (1 - t / t0) * x + (t / t0) * start
            tt = torch.full((1,), min(t, t0))
            gaps.append((policy.flow_velocity(state, tt, cond) - base.flow_velocity(state, tt, cond)).abs().mean())
    return float(torch.stack(gaps).mean())


def test_the_trust_region_keeps_the_velocity_near_the_reference_where_dpo_trains(tiny, photos):
    cfg = dict(steps=8, batch_size=4, lr=1e-3, sample_steps=2, dpo_times="sampler", flow_weight=0.0,
               encoder_lr_scale=0.0, latent_decoder_lr_scale=0.0)
    free = train_dpo(tiny, photos, closer_wins, _cfg(**cfg), progress=False).model
    held = train_dpo(tiny, photos, closer_wins, _cfg(**cfg, ref_weight=1e4), progress=False).model
    t_mid = float(tiny.model.sampler_times(2)[1])
    assert _velocity_gap(held, tiny.model, photos, t_mid) < 0.5 * _velocity_gap(free, tiny.model, photos, t_mid)


def test_the_recorded_training_time_is_the_runs_own_wall_time(tiny, photos):
    """The seconds in the result and in the curves are this run's (the chapter plots judging against them); a name
    reused for the sampler's start time once made them the process's clock."""
    import time

    t = time.perf_counter()
    res = train_dpo(tiny, photos, closer_wins, _cfg(steps=4, sample_steps=2, dpo_times="sampler"), progress=False)
    wall = time.perf_counter() - t
    assert 0 < res.seconds <= wall
    seconds = [c["seconds"] for c in res.curves]
    assert seconds == sorted(seconds) and 0 < seconds[-1] <= wall


def test_best_of_k_candidates_train_on_the_judges_best_and_worst(tiny, photos):
    """candidates = 4: each code is decoded four times and judged in a round robin (6 judgements); the pair that
    enters the buffer is further apart by the judge than a pair of two plain samples."""
    import vlic.training.dpo.trainer as trainer_module

    gaps = {}
    for k in (2, 4):
        res = train_dpo(tiny, photos, closer_wins, _cfg(candidates=k, sample_steps=2, dpo_times="sampler", steps=2),
                        progress=False)
        assert res.stats["judged"] == 4 * res.refreshes and res.stats["judge_calls"] == res.stats["judged"] * k * (k - 1) // 2
        gaps[k] = np.mean([abs(r["rating"]) for r in res.judge_log if r["accepted"]])   # MSE(loser) − MSE(winner)
    assert gaps[4] > gaps[2] > 0
    with pytest.raises(ValueError, match="candidates must be ≥ 2"):
        train_dpo(tiny, photos, closer_wins, _cfg(candidates=1), progress=False)
    draws = trainer_module.sample_candidates(tiny.model, torch.zeros(2, 3, 64, 64), 2, (5, 6, 7))
    assert len(draws) == 3 and not torch.equal(draws[0], draws[1])


def test_candidate_starts_draw_each_candidate_from_its_own_start(tiny, photos):
    """dpo.candidate_starts: the i-th candidate of a code is the decoder's sample from starts[i % len(starts)] with
    that candidate's noise; without starts every candidate starts where the decoder does."""
    from vlic.codec.sampling import sample
    from vlic.images import to_tensor
    from vlic.training.dpo.trainer import sample_candidates

    x = to_tensor(photos[:2])
    model = tiny.model
    with torch.no_grad():
        f, mu = model.code_condition(x)
        expect = [sample(model, f, mu, steps=2, seed=s, tile=None, start=t0)
                  for s, t0 in ((5, 0.3), (6, 0.6), (7, 0.3))]
    draws = sample_candidates(model, x, 2, (5, 6, 7), starts=(0.3, 0.6))
    for got, want in zip(draws, expect):
        assert torch.equal(got, want)
    plain = sample_candidates(model, x, 2, (5,))[0]
    assert torch.equal(plain, sample(model, f, mu, steps=2, seed=5, tile=None)) and not torch.equal(plain, draws[0])
    res = train_dpo(tiny, photos, closer_wins, _cfg(sample_steps=2, dpo_times="sampler", steps=2,
                                                    candidate_starts=(0.3, 0.6)), progress=False)
    assert res.stats["judged"] == 4 * res.refreshes


def test_flowmo_refuses_a_sampler_start_below_one():
    from vlic.codec.flowmo.model import FlowMo, FlowMoConfig

    model = FlowMo(FlowMoConfig(patch_size=8, mup_width=1, enc_mup_width=1, code_length=64, context_dim=4, enc_depth=1,
                                dec_depth=1, hidden_size=256, num_heads=4, axes_dim=(8, 24, 32), mlp_ratio=2.0)).eval()
    with pytest.raises(ValueError, match="starts from pure noise.*candidate_starts must be empty"):
        model.draw(torch.zeros(1, 64, 4), 1, 0, start=0.5)
    assert model.draw(model.code_condition(torch.zeros(1, 3, 256, 256)), 1, 0, start=1.0).shape == (1, 3, 256, 256)
