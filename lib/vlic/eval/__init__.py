"""Evaluation: rate–distortion (BD-rate), Elo from pairwise verdicts, metrics, the rate–distortion benchmark and summaries."""

from vlic.eval.elo import elo_ratings
from vlic.eval.ratedistortion import bd_rate

__all__ = ["bd_rate", "elo_ratings"]
