package comm100test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// identityTypes are the contact identity types
// (developer.comm100.com/docs/server-api-global-setting-contact, Contact
// Identity Object: "Allowed values are visitor, Email, SMS, ..."). There is
// no "Phone": a phone number is an SMS identity.
var identityTypes = []string{"visitor", "Email", "SMS", "facebook", "twitter", "wechat", "SSOID", "externalID",
	"whatsApp", "instagram", "telegram", "line", "SecureMessaging"}

// checkIdentities validates identities: a type from the contact page's list,
// a value, and not one already used by another contact than self (an
// identity has one contactId: the contact identity page); it says what is
// wrong ("" if nothing). s.mu must be held.
func (st *state) checkIdentities(ids []ContactIdentityRecord, self string) string {
	for _, id := range ids {
		if !slices.ContainsFunc(identityTypes, func(t string) bool { return strings.EqualFold(t, id.Type) }) {
			return fmt.Sprintf("Parameter 'contactIdentityType' must be one of %s.", strings.Join(identityTypes, ", "))
		}
		if strings.TrimSpace(id.Value) == "" {
			return "Parameter 'value' of a contact identity is required."
		}
		if id.Type == "Email" && !strings.Contains(id.Value, "@") {
			return fmt.Sprintf("Email '%s' is not valid.", id.Value)
		}
		for _, c := range st.contacts {
			if c.ID == self {
				continue
			}
			for _, o := range c.Identities {
				if o.Type == id.Type && strings.EqualFold(o.Value, id.Value) {
					return fmt.Sprintf("Contact identity %s '%s' is already used by contact %s.", id.Type, id.Value, c.ID)
				}
			}
		}
	}
	return ""
}

// handleFindContacts is GET contact/contacts, filtered by
// contactIdentityType and contactIdentityValue (both or neither), paginated.
func (s *Server) handleFindContacts(w http.ResponseWriter, r *http.Request) {
	// dash15.comm100.io/doc/Global/contact: contactIdentityType and
	// contactIdentityValue are query parameters of the list, each optional.
	q := r.URL.Query()
	typ, val := q.Get("contactIdentityType"), q.Get("contactIdentityValue")
	s.mu.Lock()
	var out []ContactRecord
	for _, c := range s.st.contacts {
		if slices.ContainsFunc(c.Identities, func(i ContactIdentityRecord) bool {
			return (typ == "" || strings.EqualFold(i.Type, typ)) && (val == "" || strings.EqualFold(i.Value, val))
		}) || (typ == "" && val == "") {
			out = append(out, *c)
		}
	}
	s.mu.Unlock()
	writePage(w, r, "contacts", out)
}

// handleCreateContact is POST contact/contacts {name, contactIdentities,
// customFields} (the contact page; Comm100's API tests create contacts so).
func (s *Server) handleCreateContact(w http.ResponseWriter, r *http.Request) {
	var in ContactRecord
	if !decodeBody(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.st.checkIdentities(in.Identities, ""); msg != "" {
		writeError(w, http.StatusBadRequest, 400000, msg)
		return
	}
	in.ID = newGUID()
	if in.Identities == nil {
		in.Identities = []ContactIdentityRecord{}
	}
	c := in
	s.st.contacts = append(s.st.contacts, &c)
	writeJSON(w, http.StatusCreated, c)
}

// handleUpdateContact is PUT contact/contacts/{id}: the name, identities and
// custom fields sent replace the stored ones; fields left out are kept.
func (s *Server) handleUpdateContact(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var in struct {
		Name         *string                  `json:"name"`
		Identities   *[]ContactIdentityRecord `json:"contactIdentities"`
		CustomFields map[string]any           `json:"customFields"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := find(s.st.contacts, func(c *ContactRecord) bool { return c.ID == id })
	if c == nil {
		writeError(w, http.StatusNotFound, 404000, "Contact not found.")
		return
	}
	u := *c
	if in.Name != nil {
		u.Name = *in.Name
	}
	if in.Identities != nil {
		if msg := s.st.checkIdentities(*in.Identities, id); msg != "" {
			writeError(w, http.StatusBadRequest, 400000, msg)
			return
		}
		u.Identities = append([]ContactIdentityRecord{}, (*in.Identities)...)
	}
	if in.CustomFields != nil {
		u.CustomFields = in.CustomFields
	}
	*c = u
	writeJSON(w, http.StatusOK, u)
}
