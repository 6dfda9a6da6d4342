"""Explanations (SHAP, LIME) keyed by (version, input hash, method, parameters).

It knows models and versions (``registry``) but nothing of predictions, so
``inference`` can ask it for an inline explanation without an import cycle.
"""
