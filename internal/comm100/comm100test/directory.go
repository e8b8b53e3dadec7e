package comm100test

import (
	"net/http"
	"slices"
	"strconv"
)

var agentStatuses = []string{"online", "away", "offline"}

// handleLiveChatAgents is GET livechat/agents: agents with presence, paginated.
func (s *Server) handleLiveChatAgents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	agents := copyAll(s.st.agents)
	s.mu.Unlock()
	writePage(w, r, "agents", agents)
}

// handleSetAgentStatus is PUT livechat/agents/{id} {"status"}.
func (s *Server) handleSetAgentStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var in struct {
		Status string `json:"status"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Status == "" {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'status' is required.")
		return
	}
	if !slices.Contains(agentStatuses, in.Status) {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'status' must be one of online, away, offline.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := find(s.st.agents, func(a *Agent) bool { return a.ID == id })
	if a == nil {
		writeError(w, http.StatusNotFound, 404000, "Agent not found.")
		return
	}
	a.Status = in.Status
	writeJSON(w, http.StatusOK, *a)
}

// handleAgents is GET global/agents, paginated.
func (s *Server) handleAgents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	agents := copyAll(s.st.agents)
	s.mu.Unlock()
	writePage(w, r, "agents", agents)
}

// handleDepartments is GET global/departments: a bare array.
func (s *Server) handleDepartments(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	deps := copyAll(s.st.departments)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, deps)
}

// handleCampaigns is GET livechat/campaigns, paginated.
func (s *Server) handleCampaigns(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	cs := copyAll(s.st.campaigns)
	s.mu.Unlock()
	writePage(w, r, "campaigns", cs)
}

// handleVisitors is GET global/visitors, paginated.
func (s *Server) handleVisitors(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	vs := copyAll(s.st.visitors)
	s.mu.Unlock()
	writePage(w, r, "visitors", vs)
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
