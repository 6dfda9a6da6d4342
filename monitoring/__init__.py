"""Monitoring: drift against the training profile, outcomes, live and estimated
performance, model health and its alerts. Reads the prediction log (``inference``)."""
