// Stub module so that `go build ./...` from the repository root does not descend into
// node_modules (some npm packages ship .go files).
module keyline/tools/node
