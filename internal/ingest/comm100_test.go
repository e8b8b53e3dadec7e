package ingest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the .golden.json files of the golden tests")

// received is the arrival time the golden tests use.
var received = time.Date(2024, 11, 22, 9, 0, 0, 0, time.UTC)

// TestNormalizeComm100Golden normalizes one real-shaped payload of every
// Comm100 webhook in testdata/comm100/NAME.json and compares the event with
// NAME.golden.json. Run with -update to rewrite the golden files.
func TestNormalizeComm100Golden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/comm100/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := normalizeComm100("comm100", body, received)
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			if err := ev.Validate(); err != nil {
				t.Fatalf("event does not validate: %v", err)
			}
			got, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(in, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got):\n%s", golden, diff)
			}
		})
	}
	if n < 10 {
		t.Errorf("found %d Comm100 payloads in testdata/comm100, want one per webhook type (10)", n)
	}
}

// TestNormalizeComm100Contract pins what the shipped rules and the end-to-end
// test rely on.
func TestNormalizeComm100Contract(t *testing.T) {
	body, err := os.ReadFile("testdata/comm100/chat_ended.json")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := normalizeComm100("comm100", body, received)
	if err != nil {
		t.Fatal(err)
	}
	chat := ev.Data["chat"].(map[string]any)
	visitor := ev.Data["visitor"].(map[string]any)
	got := map[string]any{
		"id":                ev.ID,
		"type":              ev.Type,
		"chat.id":           chat["id"],
		"chat.rating":       chat["rating"],
		"chat.waiting_time": chat["waiting_time"],
		"chat.end_time":     chat["end_time"],
		"transcript lines":  len(chat["transcript"].([]any)),
		"visitor.name":      visitor["name"],
		"time":              ev.Time.Format(time.RFC3339),
	}
	want := map[string]any{
		"id":                "chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90",
		"type":              "chat.ended",
		"chat.id":           "8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90",
		"chat.rating":       int64(1),
		"chat.waiting_time": int64(6),
		"chat.end_time":     "2024-11-22T09:00:12Z",
		"transcript lines":  6,
		"visitor.name":      "Jane Cooper",
		"time":              "2024-11-22T09:00:12Z",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chat_ended (-want +got):\n%s", diff)
	}
}

func TestNormalizeComm100Refuses(t *testing.T) {
	tests := []struct{ name, body, err string }{
		{"not json", `nope`, "body is not JSON"},
		{"array", `[1]`, "body is not a JSON object"},
		{"two values", `{"event":"chat_started"} {}`, "data after the JSON value"},
		{"no shape", `{"hello":"world"}`, "is not a Comm100 webhook"},
		{"unknown live-chat event", `{"event":"made_up"}`, `unknown Comm100 event "made_up"`},
		{"chat without id", `{"event":"chat_ended","chat":{}}`, "has no chat id"},
		{"offline message without id", `{"event":"offline_message_submitted","offline_message":{}}`, "has no offline_message.id"},
		{"agent without operator", `{"event":"away"}`, "has no operator_id"},
		{"trigger without ticket id", `{"TriggerId":"x","TicketInfo":{}}`, "has no TicketInfo.Id"},
		{"chatbot without type", `{"eventType":"","chatId":1}`, "has no eventType"},
		{"bot engine event as a number", `{"event":0,"chatId":"nocn7iKiekCiMG0IrzaEYw","question":"hi"}`, "is not a Comm100 webhook"},
		{"bot engine event without chat or bot", `{"event":"questionAsked","question":"hi"}`, `unknown Comm100 event "questionAsked"`},
		{"classic without id", `{"event":"ticket.Created","payload":{}}`, "has no eventId"},
		{"classic with bad name", `{"event":"..","eventId":"1"}`, "is not an event name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := normalizeComm100("comm100", []byte(tt.body), received)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("got error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestNormalizeComm100IDs(t *testing.T) {
	// Ids sent as numbers or strings give the same event id; a retried
	// delivery gives the same id, a different one a different id.
	tests := []struct {
		name   string
		a, b   string
		sameID bool
	}{
		{"chat id number or string", `{"event":"chat_started","visitor":{"chat_id":7}}`, `{"event":"chat_started","visitor":{"chat_id":"7"}}`, true},
		{"ticket trigger retried", `{"TriggerName":"T","TicketInfo":{"Id":1,"TotalReplies":1}}`, `{"TriggerName":"T","TicketInfo":{"Id":1,"TotalReplies":1}}`, true},
		{"ticket trigger fired again", `{"TriggerName":"T","TicketInfo":{"Id":1,"TotalReplies":1}}`, `{"TriggerName":"T","TicketInfo":{"Id":1,"TotalReplies":2}}`, false},
		{"classic event id number or string", `{"event":"ticket.Created","eventId":42}`, `{"event":"ticket.Created","eventId":"42"}`, true},
		{"TicketInfo in any letter case", `{"TriggerName":"T","TicketInfo":{"Id":1}}`, `{"TriggerName":"T","TicketInfo":{"Id":1}}`, true},
		{"wrap-up in either spelling", `{"event":"chat_wrapped_up","chat_id":"8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90"}`, `{"event":"chat_wraped_up","chat_id":"8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := normalizeComm100("comm100", []byte(tt.a), received)
			if err != nil {
				t.Fatal(err)
			}
			b, err := normalizeComm100("comm100", []byte(tt.b), received)
			if err != nil {
				t.Fatal(err)
			}
			if (a.ID == b.ID) != tt.sameID {
				t.Errorf("ids %q and %q: same = %v, want %v", a.ID, b.ID, a.ID == b.ID, tt.sameID)
			}
		})
	}
}

// TestTicketInfoInAnyCase: the ticket-trigger payload is recognised and read
// whatever the letter case of "TicketInfo" and its keys.
func TestTicketInfoInAnyCase(t *testing.T) {
	for _, body := range []string{
		`{"TriggerName":"Status changed","TicketInfo":{"Id":7,"Status":5}}`,
		`{"triggerName":"Status changed","ticketInfo":{"id":7,"status":5}}`,
		`{"TRIGGERNAME":"Status changed","TICKETINFO":{"ID":7,"STATUS":5}}`,
		`{"triggername":"Status changed","ticketinfo":{"id":7,"status":5}}`,
	} {
		ev, err := normalizeComm100("comm100", []byte(body), received)
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		info, _ := ev.Data["ticketInfo"].(map[string]any)
		if ev.Type != "ticket.status_changed" || ev.Subject != "7" || info["status"] != int64(5) {
			t.Errorf("%s: got type %s subject %s data %v", body, ev.Type, ev.Subject, ev.Data)
		}
	}
}

func TestCaseConversions(t *testing.T) {
	camel := map[string]string{"SiteId": "siteId", "TicketInfo": "ticketInfo", "Id": "id", "ID": "id", "URLPath": "urlPath", "already": "already", "": "", "É": "é"}
	for in, want := range camel {
		if got := camelCase(in); got != want {
			t.Errorf("camelCase(%q) = %q, want %q", in, got, want)
		}
	}
	snake := map[string]string{"AgentReplied": "agent_replied", "questionAsked": "question_asked", "VIP ticket: created!": "vip_ticket_created", "URLPath": "url_path", "Ticket Reply Received": "ticket_reply_received", "日本": "", "a1B": "a1_b"}
	for in, want := range snake {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNormalizeComm100 proves that no body can panic the normalizer, and that
// whatever it accepts can be published: a valid event that encodes as JSON.
func FuzzNormalizeComm100(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/comm100/*.json")
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		body, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	for _, s := range []string{
		`{"event":"chat_ended","chat":{"id":1,"chat_transcript":"⊙⊙","waiting_time":"99999999999h","rating":"x","end_time":"/Date(99999999999999999)/"}}`,
		`{"event":"ticket.","eventId":1e400,"eventTime":"/Date(-1)/","payload":[1]}`,
		`{"TicketInfo":{"Id":1e300,"CustomFields":{"A":[{"B":1}]}},"TriggerName":"日本"}`,
		`{"eventType":"x","chatId":null,"botId":{}}`,
		`{"event":"online","operator_id":1.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := normalizeComm100("comm100", bytes.Clone(body), received)
		if err != nil {
			return
		}
		if ev.ID == "" {
			t.Fatalf("accepted %q with an empty id", body)
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("accepted %q as an invalid event: %v", body, err)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("accepted %q as an event that does not encode: %v", body, err)
		}
	})
}

// msDate is what parseMSDate reads, written as a regular expression.
var msDate = regexp.MustCompile(`^/Date\((-?\d+)([+-]\d{4})?\)/$`)

// parseMSDateByExpression is parseMSDate with the expression.
func parseMSDateByExpression(s string) (time.Time, bool) {
	m := msDate.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

var msDateCases = []string{
	"/Date(1584415749307)/", "/Date(1584415749307+0800)/", "/Date(1584415749307-0530)/", "/Date(-1000)/",
	"/Date(0)/", "/Date(-1234)/", "/Date(-12345)/", "/Date(1+1234)/", "/Date(-1-1234)/", "/Date(-+1234)/",
	"/Date()/", "/Date(+0800)/", "/Date(12a)/", "/Date(1584415749307+080)/", "/Date(1584415749307+08000)/",
	"/Date(99999999999999999999)/", "/Date(1584415749307)", "Date(1584415749307)/", "/Date(１２)/", "2024-11-22T09:00:12Z", "",
}

func TestParseMSDateIsTheExpression(t *testing.T) {
	for _, s := range msDateCases {
		gt, gok := parseMSDate(s)
		wt, wok := parseMSDateByExpression(s)
		if gok != wok || !gt.Equal(wt) {
			t.Errorf("parseMSDate(%q) = %v %v, the expression gives %v %v", s, gt, gok, wt, wok)
		}
	}
	if got, ok := parseMSDate("/Date(1584415749307+0800)/"); !ok || !got.Equal(time.UnixMilli(1584415749307)) {
		t.Errorf("with an offset: got %v %v", got, ok)
	}
}

func FuzzParseMSDate(f *testing.F) {
	for _, s := range msDateCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		gt, gok := parseMSDate(s)
		wt, wok := parseMSDateByExpression(s)
		if gok != wok || !gt.Equal(wt) {
			t.Fatalf("parseMSDate(%q) = %v %v, the expression gives %v %v", s, gt, gok, wt, wok)
		}
	})
}
