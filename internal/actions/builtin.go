package actions

// builtins returns the whole catalogue. Each action lives in the file of its
// concept: comm100.go, http.go, flow.go.
func builtins() []*Action {
	var all []*Action
	all = append(all, comm100Actions()...)
	all = append(all, httpAction())
	all = append(all, flowActions()...)
	return all
}
