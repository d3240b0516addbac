"""pgmath: policy-gradient math, each formula beside a check that can fail."""

__version__ = "0.1.0"
