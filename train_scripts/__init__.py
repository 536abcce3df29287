"""The training scripts sagetwin ships; installed as ``sagetwin.train_scripts``."""
