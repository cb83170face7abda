"""Learned routing from real outcomes.

`train.train` fits a `model.LearnedRouter` from outcome JSONL files (see
`data`), `evaluate.evaluate` scores it through the server's `Router` with the
data README's metrics (`scoring`), `feedback.FeedbackStore` keeps outcomes for
retraining and `ab` splits traffic between router versions. Nothing here is
imported by the server unless `routing.learned.artifact` is configured.
"""

__all__ = ["ab", "commands", "data", "evaluate", "feedback", "model", "scoring", "train"]
