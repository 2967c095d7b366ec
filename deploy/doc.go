// Package deploy holds the deployment artefacts; its tests check them
// against real tools.
//
// The artefacts are files, not Go: grafana/egressgate.json (the dashboard),
// prometheus/alerts.yml with its promtool unit tests, prometheus/scrape.yml,
// kubernetes/ (a kustomize base), systemd/egressgate.service and, at the
// repository root, the Dockerfile. The tests run promtool on the rules and
// the scrape config, decode the Kubernetes manifests, verify the systemd
// unit, and evaluate every PromQL expression of the dashboard and the alerts
// on a real Prometheus scraping a real egressgate, so that a renamed metric
// or a wrong join fails here rather than on a blank panel.
package deploy
