"""Tag guidance on a tiny codec: the learned tag table trains with the decoder (encoder frozen), a zero table decodes
exactly like the untagged codec, the file's tags steer the decode, and CFG over tags behaves as its formula says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlic.codec.bitstream import parse
from vlic.codec.image_codec import ImageCodec
from vlic.training.finetune import FinetuneConfig
from vlic.codec.tag_conditioning import TagEmbedding, decode
from vlic.training.tag_guidance import finetune_with_tags
from conftest import synthetic_photo as _photo



@pytest.fixture(scope="module")
def tiny(tiny_pretrained, tmp_path_factory):
    base, images = tiny_pretrained["ck"], tiny_pretrained["images"]
    ck, table, curves = finetune_with_tags(base, images, [[285, 281], [7]],
                                           FinetuneConfig(steps=3, batch_size=4, lr=1e-2), "tags")
    return {"dir": tmp_path_factory.mktemp("tag_codec"), "base": base, "ck": ck, "table": table, "curves": curves}


def test_tag_embedding_means_rows_and_empty_is_zero():
    e = TagEmbedding(3, 10)
    e.table.weight.data = torch.arange(30.0).view(10, 3)
    v = e([[1, 3], []])
    assert v.shape == (2, 3, 1, 1)
    assert v[0, :, 0, 0].tolist() == [6.0, 7.0, 8.0] and v[1].abs().sum() == 0


def test_finetune_with_tags_trains_the_table_and_keeps_the_tokens(tiny):
    table = tiny["table"].table.weight
    assert table[[285, 281, 7]].abs().sum() > 0 and table[0].abs().sum() == 0   # only the tags seen were trained
    assert [c["step"] for c in tiny["curves"]] == [0, 1, 2]
    px = _photo(40, 48, 3)
    a, b = ImageCodec(tiny["base"]).compress(px), ImageCodec(tiny["ck"]).compress(px, tags=[285])
    assert parse(a.data).payload == parse(b.data).payload
    with pytest.raises(ValueError, match="tag lists"):
        finetune_with_tags(tiny["base"], [px], [], FinetuneConfig(steps=1))


def test_table_save_load_round_trip(tiny):
    path = tiny["table"].save(tiny["dir"] / "tags.safetensors")
    back = TagEmbedding.load(path)
    assert torch.equal(back.table.weight, tiny["table"].table.weight)


def test_decode_uses_the_files_tags_and_cfg(tiny):
    codec, table, px = ImageCodec(tiny["ck"]), tiny["table"], _photo(40, 48, 4)
    plain = codec.compress(px)
    zero = TagEmbedding(tiny["base"].model.config.cond_channels)
    # a zero table = the untagged decoder, exactly (same noise, same steps, same tiles)
    assert np.array_equal(decode(codec, plain.data, zero, steps=2, seed=1), codec.decompress(plain.data, steps=2, seed=1))
    untagged = decode(codec, plain.data, table, steps=1)
    tagged = decode(codec, codec.compress(px, tags=[285, 281]).data, table, steps=1)
    assert not np.array_equal(untagged, tagged)                     # the tags in the file steer the decoder
    # CFG scale 1 = the conditional decode; scale 0 = the decode with the tags dropped
    data = codec.compress(px, tags=[285, 281]).data
    assert np.array_equal(decode(codec, data, table, steps=1, cfg_scale=1.0), tagged)
    assert np.array_equal(decode(codec, data, table, steps=1, cfg_scale=0.0), untagged)
    assert not np.array_equal(decode(codec, data, table, steps=1, cfg_scale=5.0), tagged)
