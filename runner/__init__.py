"""The one-command local run (`scripts/run`) and its demo (`scripts/demo`)."""
