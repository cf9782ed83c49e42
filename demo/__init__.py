"""The README's first command: seed 000's federation, on this machine."""
