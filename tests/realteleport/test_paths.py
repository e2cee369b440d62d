"""Connection paths against a real auth server and proxy: straight to auth (port 3025) and
through the proxy's web listener with TLS routing (port 3080, the address a Cloud user
writes is host:443 and takes the same path). Each must complete a request's lifecycle, and
the log must name the path taken."""

import pytest

from realtp import REVIEWERS


@pytest.mark.parametrize("via,path", [("auth", "direct"), ("proxy", "tls-routing")])
def test_connection_path(plugins, via, path):
    env = plugins
    p = env.plugin(via=via, name="plugin-" + via).start()
    p.wait_log("Connected to Teleport")
    # The controller's line (with the cluster); through the proxy, the TLS dialer logs one too.
    connected = [l for l in p.find("Connected to Teleport") if "cluster" in l]
    addr = env.cluster.auth_addr if via == "auth" else env.cluster.web_addr
    assert connected[0]["path"] == path and connected[0]["addr"] == addr, connected
    assert connected[0]["cluster"] == env.cluster.name
    assert not p.find("Teleport path failed, trying the other one")
    rid = env.driver.create(reason="path " + via)
    inc = env.wait_incident(rid)
    env.driver.review(rid, REVIEWERS[0], "APPROVED", "fine via " + via)
    env.wait_resolved(rid)
    notes = env.note_texts(inc["id"])
    assert notes[-1] == "Access request has been approved\nReason: fine via " + via
