"""The experiments behind the shipped results; each is a command and writes a folder of CSVs and provenance.

- ``study`` (``lgd study``) and its figure ``study_plots``: the diffusion study on the beacon task; ``reach_study`` (``lgd reach-study``)
  and its figures ``reach_plots``: LGD against the plain network and the other global-context blocks over cue
  distance; ``two_stream`` (``lgd two-stream``); ``precision`` (``lgd precision``);
  ``context_budget`` (``lgd summary --budget``);
- the benchmarks: ``bench_models`` (``lgd bench``), ``bench_data`` (``lgd data bench``) and ``bench_flow``
  (``lgd data bench --flow``);
- what they share: ``results`` (the one writer: atomic CSVs and a provenance JSON); the intervals come from
  ``lgd_tutorial.stats``.

These modules import the library (``lgd_tutorial.models``, ``data``, ``viz``, ``training``, ...); the library
never imports them (``tests/test_layers.py`` checks it).
"""
