"""The model registry's promotion workflow: aliases, gates kept as data, an audit trail.

- :mod:`~feature_store.registry.policy`: the promotion policy (``mlflow/registry.yaml``),
  loaded and validated;
- :mod:`~feature_store.registry.promotion`: the gate (a decision with every check),
  promotion and rollback by alias;
- :mod:`~feature_store.registry.evaluators`: the evaluators the model domains declare, to
  re-score a champion on a candidate's evaluation data (the identity of that data and the
  evaluators' contract are in :mod:`feature_store.evaluation`);
- :mod:`~feature_store.registry.audit`: the append-only Delta table of alias changes;
- :mod:`~feature_store.registry.listing`: versions, aliases and key metrics as a table.

Importing this package is cheap.
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
