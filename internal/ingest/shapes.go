package ingest

// The shapes of the normalized Comm100 live-chat events, for checking rules
// at load time: a rule that only listens to these events and reads a field
// they do not have (data.chat.ratting) is refused with the field's position,
// instead of being silently false at run time. They follow the normalization
// in comm100.go; TestShapesCoverNormalizedEvents keeps the two in step. The
// fields are those of the knowledge base's "Reference for Webhook event"
// samples (see internal/comm100/SOURCES.md): chat ids are GUIDs, visitor
// status is an integer, attachments are {name, uri}.

type c100Visitor struct {
	ID               string         `expr:"id"`
	Name             string         `expr:"name"`
	Email            string         `expr:"email"`
	Phone            string         `expr:"phone"`
	Company          string         `expr:"company"`
	ChatID           string         `expr:"chat_id"` // a GUID
	Status           int            `expr:"status"`  // an integer code
	Skill            string         `expr:"skill"`
	Browser          string         `expr:"browser"`
	OperatingSystem  string         `expr:"operating_system"`
	IP               string         `expr:"ip"`
	City             string         `expr:"city"`
	State            string         `expr:"state"`
	Country          string         `expr:"country"`
	Language         string         `expr:"language"`
	TimeZone         string         `expr:"time_zone"`
	CurrentBrowsing  string         `expr:"current_browsing"`
	LandingPage      string         `expr:"landing_page"`
	ReferrerURL      string         `expr:"referrer_url"`
	PageViews        int            `expr:"page_views"`
	Visits           int            `expr:"visits"`
	Chats            int            `expr:"chats"`
	FirstVisitTime   string         `expr:"first_visit_time"`
	VisitTime        string         `expr:"visit_time"`
	Department       string         `expr:"department"`
	CustomFields     map[string]any `expr:"custom_fields"`
	CustomVariables  map[string]any `expr:"custom_variables"`
	FlashVersion     string         `expr:"flash_version"`
	Keywords         string         `expr:"keywords"`
	ProductService   string         `expr:"product_service"`
	ScreenResolution string         `expr:"screen_resolution"`
	SearchEngine     any            `expr:"search_engine"`
}

type c100Attachment struct {
	Name string `expr:"name"`
	URI  string `expr:"uri"`
}

type c100Chat struct {
	ID             string           `expr:"id"` // a GUID
	Name           string           `expr:"name"`
	Email          string           `expr:"email"`
	Company        string           `expr:"company"`
	Department     string           `expr:"department"`
	CustomVariable map[string]any   `expr:"custom_variable"`
	Transcript     []string         `expr:"transcript"`
	StartTime      string           `expr:"start_time"`
	EndTime        string           `expr:"end_time"`
	WaitingTime    int              `expr:"waiting_time"`
	Operators      any              `expr:"operators"`
	Rating         int              `expr:"rating"`
	RatingComment  string           `expr:"rating_comment"`
	WrapUp         any              `expr:"wrap_up"`
	CustomFields   map[string]any   `expr:"custom_fields"`
	Attachment     []c100Attachment `expr:"attachment"`
}

type c100Wrapup struct {
	Category any    `expr:"category"`
	Comment  string `expr:"comment"`
	Fields   any    `expr:"fields"`
	Time     string `expr:"time"`
}

type c100OfflineMessage struct {
	ID             string         `expr:"id"` // a GUID
	Skill          string         `expr:"skill"`
	CustomVariable map[string]any `expr:"custom_variable"`
	Name           string         `expr:"name"`
	Email          string         `expr:"email"`
	Phone          string         `expr:"phone"`
	Company        string         `expr:"company"`
	Department     string         `expr:"department"`
	Subject        string         `expr:"subject"`
	Content        string         `expr:"content"`
	Time           string         `expr:"time"`
	Attachment     c100Attachment `expr:"attachment"`
	CustomFields   map[string]any `expr:"custom_fields"`
}

type c100ChatStarted struct {
	Visitor c100Visitor `expr:"visitor"`
	ChatID  string      `expr:"chat_id"`
}

type c100ChatEnded struct {
	Visitor c100Visitor `expr:"visitor"`
	Chat    c100Chat    `expr:"chat"`
	ChatID  string      `expr:"chat_id"`
}

type c100ChatWrappedUp struct {
	Visitor c100Visitor `expr:"visitor"`
	Wrapup  c100Wrapup  `expr:"wrapup"`
	ChatID  string      `expr:"chat_id"`
}

type c100ChatTransferred struct {
	Visitor c100Visitor `expr:"visitor"`
	Chat    c100Chat    `expr:"chat"`
	ChatID  string      `expr:"chat_id"`
}

type c100OfflineSubmitted struct {
	Visitor        c100Visitor        `expr:"visitor"`
	OfflineMessage c100OfflineMessage `expr:"offline_message"`
}

type c100AgentStatus struct {
	OperatorID string `expr:"operator_id"` // a GUID on v4
	Status     string `expr:"status"`
}

// Comm100Shapes returns the shapes of the data of the comm100 source's
// events, by event type: struct values whose expr tags name the fields the
// normalizer produces. Callers register them with the rules loader
// (rules.Shapes.Add) under the source's name.
func Comm100Shapes() map[string]any {
	return map[string]any{
		"chat.requested":            c100ChatStarted{},
		"chat.started":              c100ChatStarted{},
		"chat.ended":                c100ChatEnded{},
		"chat.wrapped_up":           c100ChatWrappedUp{},
		"chat.transferred":          c100ChatTransferred{},
		"offline_message.submitted": c100OfflineSubmitted{},
		"agent.status_changed":      c100AgentStatus{},
	}
}
