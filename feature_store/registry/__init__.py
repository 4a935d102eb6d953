"""The model registry's promotion workflow: aliases, gates kept as data, an audit trail.

- :mod:`~feature_store.registry.policy`: the promotion policy (``mlflow/registry.yaml``);
- :mod:`~feature_store.registry.promotion`: the gate, promotion and rollback by alias;
- :mod:`~feature_store.registry.evaluators`: the evaluators the model domains declare;
- :mod:`~feature_store.registry.audit`: the append-only Delta table of alias changes;
- :mod:`~feature_store.registry.listing`: versions, aliases and key metrics as a table.

Importing this package is cheap. More: docs/registry-and-publishing.md.
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
