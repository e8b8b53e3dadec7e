package comm100

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// Contact is a Comm100 contact with the identities (email, phone, ...) it is
// known by.
type Contact struct {
	ID           ID                `json:"id,omitempty"`
	Name         string            `json:"name,omitempty"`
	Identities   []ContactIdentity `json:"contactIdentities,omitempty"`
	CustomFields map[string]any    `json:"customFields,omitempty"`
}

// ContactIdentity is one way a contact is known, such as
// {Type: "Email", Value: "a@b.c"}.
type ContactIdentity struct {
	Type  string `json:"contactIdentityType"`
	Value string `json:"value"`
}

// contactsPath is contact/contacts, or global/contacts on older v4 shards
// (found out from a 404 and remembered).
func (c *Client) contactsPath() string {
	if c.legacyContacts.Load() {
		return "global/contacts"
	}
	return "contact/contacts"
}

// FindContacts calls GET contact/contacts?contactIdentityType=&contactIdentityValue=
// and returns every match. On a shard that answers 404 there it asks
// global/contacts, and keeps doing so.
func (c *Client) FindContacts(ctx context.Context, identityType, value string) ([]Contact, error) {
	q := url.Values{"contactIdentityType": {identityType}, "contactIdentityValue": {value}}
	path := c.contactsPath()
	out, err := collect(list[Contact](ctx, c, path, q, "contacts"))
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && path == "contact/contacts" {
		c.legacyContacts.Store(true)
		return collect(list[Contact](ctx, c, c.contactsPath(), q, "contacts"))
	}
	return out, err
}

// CreateContact calls POST contact/contacts.
func (c *Client) CreateContact(ctx context.Context, ct Contact) (*Contact, error) {
	var out Contact
	if err := c.Do(ctx, http.MethodPost, c.contactsPath(), nil, ct, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateContact calls PUT contact/contacts/{id}.
func (c *Client) UpdateContact(ctx context.Context, id string, ct Contact) (*Contact, error) {
	seg, err := pathID("contact", id)
	if err != nil {
		return nil, err
	}
	ct.ID = ""
	var out Contact
	if err := c.Do(ctx, http.MethodPut, c.contactsPath()+"/"+seg, nil, ct, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
