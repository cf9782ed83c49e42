// Wrapper module: pins the skaffold release whose source holds the JSON
// schema of skaffold.yaml (docs-v2/content/en/schemas/<apiVersion>.json).
// Nothing is built: testbed/build.py downloads the module, checked against
// go.sum, and copies the schema into the test bed's cache. No package here
// imports skaffold, so `go mod tidy` would drop the requirement: edit by hand.
module github.com/irt-saintexupery/cluster-discovery/testbed/go/skaffold

go 1.26.0

require github.com/GoogleContainerTools/skaffold/v2 v2.16.1
