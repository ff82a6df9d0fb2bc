"""The four training objectives of the reference paper, as named configurations.

Each objective is collator settings (which feedback types are inputs, how target events are
labelled and weighted) plus one model switch (whether the model sees feedback codes):

| objective        | input events          | feedback input | labels (weight)                         |
|------------------|-----------------------|----------------|-----------------------------------------|
| positive_only    | all events, ids only  | off            | positive +1 (r); others 0               |
| input_only       | all events            | on             | as positive_only                        |
| input_ntr        | all events            | on             | positive +1 (r), dislike -1 (w_dislike), |
|                  |                       |                | skip -1 (w_skip); neutral 0             |
| filter_history   | all but dislikes      | off            | as positive_only                        |

``positive_only`` is the "no negative signals" baseline: a disliked item is an ordinary
history item to it, so its counterfactual responsiveness is zero by construction.

Default weights (r = 1, w_dislike = 5, w_skip = 1) come from a small sweep on the simulator's
held-out events (docs/objectives.md): they gave the lowest dislike exposure at no loss of
NDCG@10 among the settings tried. The NTR term's push on a disliked target's logit is w * p, so
with a full softmax over many items (small p) w_dislike must be larger: on MovieLens-100K,
w_dislike = 50 was chosen on validation events (docs/objectives.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from negrec.data.collate import CollateConfig, TargetRule
from negrec.data.feedback import FEEDBACK_TYPES, Feedback

__all__ = ["OBJECTIVES", "Objective", "get_objective"]

OBJECTIVES = ("positive_only", "input_only", "input_ntr", "filter_history")

DEFAULT_R = 1.0
DEFAULT_W_DISLIKE = 5.0
DEFAULT_W_SKIP = 1.0


@dataclass(frozen=True)
class Objective:
    name: str
    input_feedback: frozenset[Feedback]
    feedback_input: bool
    r: float = DEFAULT_R
    w_dislike: float = DEFAULT_W_DISLIKE
    w_skip: float = DEFAULT_W_SKIP

    @property
    def ntr(self) -> bool:
        return self.name == "input_ntr"

    def targets(self) -> dict[Feedback, TargetRule]:
        t = {Feedback.POSITIVE: TargetRule(1, self.r)}
        if self.ntr:
            t[Feedback.DISLIKE] = TargetRule(-1, self.w_dislike) if self.w_dislike > 0 else TargetRule(0)
            t[Feedback.SKIP] = TargetRule(-1, self.w_skip) if self.w_skip > 0 else TargetRule(0)
        return t

    def collate_config(self, max_len: int, *, random_crop: bool = False, left_pad: bool = True
                       ) -> CollateConfig:
        return CollateConfig(max_len=max_len, input_feedback=self.input_feedback,
                             targets=self.targets(), random_crop=random_crop, left_pad=left_pad)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_feedback"] = sorted(f.label for f in self.input_feedback)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Objective":
        return get_objective(d["name"], r=d.get("r", DEFAULT_R),
                             w_dislike=d.get("w_dislike", DEFAULT_W_DISLIKE),
                             w_skip=d.get("w_skip", DEFAULT_W_SKIP))


def get_objective(name: str, *, r: float = DEFAULT_R, w_dislike: float = DEFAULT_W_DISLIKE,
                  w_skip: float = DEFAULT_W_SKIP) -> Objective:
    """One of :data:`OBJECTIVES`, with its label weights."""
    for value, what in ((r, "r"), (w_dislike, "w_dislike"), (w_skip, "w_skip")):
        if not value >= 0:
            raise ValueError(f"objective weight {what} must be >= 0; got {value}")
    everything = frozenset(FEEDBACK_TYPES)
    if name == "positive_only":
        return Objective(name, everything, feedback_input=False, r=r)
    if name == "input_only":
        return Objective(name, everything, feedback_input=True, r=r)
    if name == "input_ntr":
        return Objective(name, everything, feedback_input=True, r=r, w_dislike=w_dislike, w_skip=w_skip)
    if name == "filter_history":
        return Objective(name, everything - {Feedback.DISLIKE}, feedback_input=False, r=r)
    raise ValueError(f"unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}")
