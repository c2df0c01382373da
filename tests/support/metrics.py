"""Reading the ``faultspan.failures`` counter out of the OTLP metrics requests a sink received."""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from support.collector import decode_attributes

Counts = dict[tuple[str, str], int]
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def failure_counts(requests: list[ExportMetricsServiceRequest]) -> Counts:
    """The counter's last cumulative value per (exception.type, faultspan.fingerprint)."""
    counts: Counts = {}
    for request in requests:
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "faultspan.failures":
                        continue
                    assert scope.scope.name == "faultspan"
                    assert metric.unit == "{failure}"
                    assert metric.sum.is_monotonic
                    assert metric.sum.aggregation_temporality == CUMULATIVE
                    for point in metric.sum.data_points:
                        attributes = decode_attributes(point.attributes)
                        key = (str(attributes["exception.type"]), str(attributes["faultspan.fingerprint"]))
                        counts[key] = max(counts.get(key, 0), point.as_int)
    return counts
