from vad.utils.utils import (
    exit_after_failure,
    format_metrics,
    get_metric_value,
    instantiate_callbacks,
    instantiate_loggers,
    log_hyperparameters,
    task_wrapper,
)

__all__ = ["exit_after_failure", "format_metrics", "get_metric_value", "instantiate_callbacks", "instantiate_loggers",
           "log_hyperparameters", "task_wrapper"]
