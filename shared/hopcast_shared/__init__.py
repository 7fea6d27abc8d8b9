"""Hopcast's shared kernel: the only code the four services share."""
