"""Integrations with other tools, each behind an optional extra:
``contrib.locust`` (``pip install http_async_client[locust]``): a Locust
user class; ``contrib.otel`` (``[otel]``): OpenTelemetry client spans.
Nothing here is imported by the package itself."""
