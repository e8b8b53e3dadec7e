package ingest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestShapesCoverNormalizedEvents checks the shapes the rules are type-checked
// against (Comm100Shapes) with the normalizer's golden output: every field a normalized
// Comm100 event carries must exist in its shape, or rules could not use it.
func TestShapesCoverNormalizedEvents(t *testing.T) {
	files, err := filepath.Glob("testdata/comm100/*.golden.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden events found: %v", err)
	}
	shapes := Comm100Shapes()
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatal(err)
		}
		shape, ok := shapes[ev.Type]
		if !ok {
			continue // types without a shape are not type-checked
		}
		checked++
		for _, missing := range missingFields(ev.Data, reflect.TypeOf(shape), "data") {
			t.Errorf("%s: %s has no field %s in its shape", filepath.Base(f), ev.Type, missing)
		}
	}
	if checked < 6 {
		t.Errorf("only %d golden events had a shape; the live-chat events should all have one", checked)
	}
}

func missingFields(v map[string]any, t reflect.Type, path string) []string {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		fields[f.Tag.Get("expr")] = f.Type
	}
	var out []string
	for k, val := range v {
		ft, ok := fields[k]
		if !ok {
			out = append(out, path+"."+k)
			continue
		}
		if sub, ok := val.(map[string]any); ok && ft.Kind() == reflect.Struct {
			out = append(out, missingFields(sub, ft, path+"."+k)...)
		}
	}
	return out
}
