from graphs.broker import build_broker_graph
from graphs.incident import build_incident_graph
from graphs.supervisor import build_supervisor_graph


def test_broker_graph_shape(snapshot):
    assert build_broker_graph().get_graph().draw_mermaid() == snapshot


def test_supervisor_graph_shape(snapshot):
    assert build_supervisor_graph().get_graph(xray=1).draw_mermaid() == snapshot


def test_incident_graph_shape(snapshot):
    mermaid = build_incident_graph().get_graph().draw_mermaid()
    assert mermaid == snapshot
    order = ["monitoring", "anomaly_detected", "evaluating", "adapting", "resolved"]
    assert [mermaid.index(f"\t{n}(") for n in order] == sorted(
        mermaid.index(f"\t{n}(") for n in order
    )
