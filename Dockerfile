# One image for the API server, scheduler, dag-processor, triggerer and workers (Celery or Kubernetes).
#   docker build -t hubspot-finance-sync .
#   (the celery and amazon providers are in requirements.txt; EXTRA_PIP_PACKAGES adds others, e.g. a secrets backend's)
FROM apache/airflow:3.3.2-python3.12

# Extra distributions for the deployment, e.g. the Google provider for a gs:// raw zone.
ARG EXTRA_PIP_PACKAGES=""

COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml /opt/hubspot-sync/
COPY --chown=airflow:root include /opt/hubspot-sync/include
COPY --chown=airflow:root plugins/hubspot-provider /opt/hubspot-sync/plugins/hubspot-provider

# The pinned set, the pipeline library and the provider (which registers the `hubspot` connection type).
RUN pip install --no-cache-dir -c /opt/hubspot-sync/constraints.txt \
        -r /opt/hubspot-sync/requirements.txt \
        /opt/hubspot-sync /opt/hubspot-sync/plugins/hubspot-provider ${EXTRA_PIP_PACKAGES}

COPY --chown=airflow:root dags /opt/airflow/dags
# The UI plugins: the "HubSpot sync" page and the connection Test-button fix (their code is installed above).
COPY --chown=airflow:root plugins/hubspot_ui.py plugins/hubspot_sync_page_plugin.py /opt/airflow/plugins/
