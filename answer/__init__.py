"""The answer step: turn retrieved passages into a short answer with verified, verbatim citations."""
