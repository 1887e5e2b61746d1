"""Evaluation on the field's benchmarks, each with its own protocol (paper sections 6-7).

One module per benchmark holds its reader (the benchmark's own files) and its protocol:
:mod:`.aflw2000`, :mod:`.biwi`, :mod:`.dad3dheads`, :mod:`.wider`, :mod:`.fddb`, and
:mod:`.synthetic` (the paper's validation NME and failure rate on this project's own data).
Shared pieces: :mod:`.types` (the predictor interface every model and peer implements),
:mod:`.boxes`, :mod:`.angles` (Euler conventions), :mod:`.metrics` (pure metric functions),
:mod:`.peers` (MTCNN and dlib, weights shipped inside their packages), :mod:`.report` (metrics
files, curves, plots, the results table against the paper's numbers).

A model plugs in as a :data:`~.types.Predictor`: a callable from an RGB image (H, W, 3) uint8
to a list of :class:`~.types.HeadPrediction`.
"""

from .types import BenchmarkResult, HeadPrediction, Predictor

__all__ = ["BenchmarkResult", "HeadPrediction", "Predictor"]
