"""Developer and demo tooling: `make demo`, `make airflow`. Never imported by the pipeline."""
