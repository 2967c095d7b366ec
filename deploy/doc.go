// Package deploy holds the deployment artefacts; its tests check them
// against real tools.
//
// The artefacts are files, not Go: the Dockerfile at the repository's root
// with container/ (the scripts `make image` runs), systemd/ (the unit, a
// sample config and catalog), kubernetes/ (a kustomize base, an optional
// ServiceMonitor component and an example overlay), compose/ (a local
// trial stack), prometheus/ (scrape config, alert rules and their tests),
// alertmanager/ and grafana/egressgate.json (the dashboard). The tests
// build and run the image with podman, render the kustomizations with
// kubectl and decode every object strictly into the Kubernetes API types,
// verify the unit with systemd-analyze and exercise its notify protocol,
// load the compose file with the Compose specification's loader, decode
// the dashboard into Grafana's dashboard types, run promtool and amtool on
// the configs, and evaluate every PromQL expression of the dashboard and
// the alerts on a real Prometheus scraping a real egressgate, so that a
// renamed metric, a misspelt field or a wrong port fails here rather than
// in a cluster or on a blank panel.
package deploy
