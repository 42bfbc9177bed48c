"""Optional callbacks (never evaluation: that is `vad.evaluation.evaluator.FrameEvaluator`)."""
