package comm100test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// webhookEvents are the live-chat subscriptions Comm100 offers
// (developer.comm100.com/docs/server-api-livechat-webhook: event "Allowed values").
var webhookEvents = []string{
	"chatIsRequested", "chatStarts", "chatEnds", "chatIsWrappedUp", "chatIsTransferred",
	"offlineMessageIsSubmitted", "agentStatusChanges",
}

// handleWebhooks is GET livechat/webhooks: a bare array.
func (s *Server) handleWebhooks(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	hs := copyAll(s.st.webhooks)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, hs)
}

type webhookIn struct {
	Event     string `json:"event"`
	TargetURL string `json:"targetUrl"`
}

// check applies the webhook page: event from its list and targetUrl, both
// required; "Target url" is taken to be an absolute http(s) URL.
func (in webhookIn) check() string {
	switch {
	case in.Event == "":
		return "Parameter 'event' is required."
	case !slices.Contains(webhookEvents, in.Event):
		return "Parameter 'event' must be one of " + strings.Join(webhookEvents, ", ") + "."
	case in.TargetURL == "":
		return "Parameter 'targetUrl' is required."
	}
	u, err := url.Parse(in.TargetURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "Parameter 'targetUrl' must be an absolute http or https URL."
	}
	return ""
}

func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) {
	var in webhookIn
	if !decodeBody(w, r, &in) {
		return
	}
	if msg := in.check(); msg != "" {
		writeError(w, http.StatusBadRequest, 400000, msg)
		return
	}
	s.mu.Lock()
	h := &WebhookRecord{ID: newGUID(), Event: in.Event, TargetURL: in.TargetURL}
	s.st.webhooks = append(s.st.webhooks, h)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, h)
}

func (s *Server) handleUpdateWebhook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var in webhookIn
	if !decodeBody(w, r, &in) {
		return
	}
	if msg := in.check(); msg != "" {
		writeError(w, http.StatusBadRequest, 400000, msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := find(s.st.webhooks, func(h *WebhookRecord) bool { return sameGUID(h.ID, id) })
	if h == nil {
		writeError(w, http.StatusNotFound, 404000, "Webhook not found.")
		return
	}
	h.Event, h.TargetURL = in.Event, in.TargetURL
	writeJSON(w, http.StatusOK, *h)
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.st.webhooks, func(h *WebhookRecord) bool { return sameGUID(h.ID, id) })
	if i < 0 {
		writeError(w, http.StatusNotFound, 404000, "Webhook not found.")
		return
	}
	s.st.webhooks = slices.Delete(s.st.webhooks, i, i+1)
	w.WriteHeader(http.StatusNoContent)
}
