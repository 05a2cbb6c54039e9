"""Live evaluation: models judged on labelled production traffic, one look at a time.

One capability with one vocabulary (looks, boundaries, α spent): ``sequential`` (the
group-sequential test of an AUC difference over a growing labelled sample: spending functions,
boundaries, the state of the looks), ``labelled_log`` (the one adapter from the scoring
service's prediction log to the rows the tests use), ``outcome`` (the options of both live
tests, what a look found, and the pieces they share), ``challenger`` (the challenger's
evaluation against production, and acting on it: promote or clear), ``watch`` (the
post-promotion watch: roll a new production back when it does worse than the previous one),
``params`` (the live flows' flat parameters) and ``report`` (text, JSON, Markdown and HTML
reports of a look).

May import :mod:`model.gate` (DeLong's test, the report helpers), :mod:`model.registry`,
:mod:`model.errors`; never the cycle or CLI packages. The flows reach it through
``tasks/live.py``; ``retrain challenger evaluate`` and ``retrain watch`` call it directly.
"""
