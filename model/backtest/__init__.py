"""Backtests: dated history replayed through the real cycle, one scratch working root per
policy, in simulated time; what each policy would have given, side by side.

Owns ``timeline`` (dated data cut into the start window and one batch per period),
``policies`` (the configured policy, ``never``, ``always`` and ``--set`` variants; their
checks), ``params`` (the ``backtest`` flow's parameters), ``replay`` (what happens to a batch
around its cycle: served by the scoring service's model set into the prediction log, its
labels joined, landed in ``incoming/``; the ``always`` policy's forced promotion), ``ledger``
(a policy's summary from its registry's history), ``result`` (``backtest.json``), ``chart``
and ``report`` (the HTML report, the artifact's Markdown). The cycles are the real flows
(``flows/backtest.py`` sequences them); time is :mod:`model.clock`'s, the scratch root
:func:`model.settings.working_root`'s.

The top layer of the domain (below only the CLI): it may import cycle, live, serving,
registry, drift, gate, training and data; only ``flows/``, ``tasks/`` and the CLI import it.
"""
