"""How benchmarks judge methods fairly: ROC summaries of a score (`roc`) and the one rule that
chooses a method's setting on the tuning split only (`tuning`)."""

from dmsec.evaluation.roc import auc, best_accuracy, tpr_at_fpr
from dmsec.evaluation.tuning import (
    REPORTING,
    TUNING,
    Choice,
    Trial,
    choose_setting,
    smallest_within,
    sweep_table,
)

__all__ = [
    "REPORTING",
    "TUNING",
    "Choice",
    "Trial",
    "auc",
    "best_accuracy",
    "choose_setting",
    "smallest_within",
    "sweep_table",
    "tpr_at_fpr",
]
