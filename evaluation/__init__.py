"""Measured answer quality: question sets, metrics and the runner behind `articlebot eval`."""
