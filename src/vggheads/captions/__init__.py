"""Caption sampling for the ``sample_captions`` stage: LAION metadata in, prompts out (paper 1.1-1.2)."""
