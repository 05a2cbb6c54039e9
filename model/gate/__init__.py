"""The promotion gate: score both models on one holdout, measure, test, decide, report.

Owns ``metrics`` (metric functions over labels, scores and a decision threshold),
``stats`` (DeLong, the paired stratified bootstrap, McNemar, Holm), ``comparator``
(``ModelComparator`` → ``ComparisonResult``: the decision) and ``report`` (text, JSON, HTML,
Markdown renderings of a result). The group-sequential test on live labels is
:mod:`model.live`. May import
``model.data``, ``model.training`` (to load the models it compares) and ``model.errors``;
never the registry, drift, cycle or CLI packages.
"""
