package comm100test

import (
	"net/http"
	"strings"
)

// handleTags is GET ticketing/tags: a bare array
// (developer.comm100.com/docs/server-api-ticketing-tag).
func (s *Server) handleTags(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	tags := copyAll(s.st.tags)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, tags)
}

func (s *Server) handleCreateTag(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	name := strings.TrimSpace(in.Name)
	if name == "" { // the tag page: name, body, required
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'name' is required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &TagRecord{ID: newGUID(), Name: name}
	s.st.tags = append(s.st.tags, t)
	writeJSON(w, http.StatusCreated, t)
}
