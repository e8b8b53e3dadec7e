package comm100test

import (
	"net/http"
	"strconv"
	"strings"
)

// agentStatuses are the statuses PUT livechat/agents/{id} takes
// (dash15.comm100.io/doc/LiveChat/chatServer: "online", "away" and custom
// away statuses, which the simulator has none of), with the name
// GET livechat/agents shows for each ("Online" in the page's sample).
var agentStatuses = map[string]string{"online": "Online", "away": "Away"}

// liveAgent is an agent's status as the chat server pages give it.
type liveAgent struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	OngoingChats int    `json:"ongoingChats"`
}

// handleLiveChatAgents is GET livechat/agents: a bare array of
// {id, status, ongoingChats}.
func (s *Server) handleLiveChatAgents(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make([]liveAgent, 0, len(s.st.agents))
	for _, a := range s.st.agents {
		out = append(out, liveAgent{ID: a.ID, Status: a.Status})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// handleSetAgentStatus is PUT livechat/agents/{id} {"status"}.
func (s *Server) handleSetAgentStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var in struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	name, ok := agentStatuses[in.Status]
	switch {
	case in.Status == "":
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'status' is required.")
		return
	case !ok:
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'status' must be online, away or a custom away status of the site.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := find(s.st.agents, func(a *AgentRecord) bool { return strings.EqualFold(a.ID, id) })
	if a == nil {
		writeError(w, http.StatusNotFound, 404000, "Agent not found.")
		return
	}
	a.Status = name
	writeJSON(w, http.StatusOK, liveAgent{ID: a.ID, Status: a.Status})
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
