package schemas

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated column reference in docs/schemas.md")

const (
	docBegin = "<!-- BEGIN GENERATED COLUMNS (go test ./schemas -run TestDocsColumnReference -update) -->"
	docEnd   = "<!-- END GENERATED COLUMNS -->"
)

// columnReference renders every dataset's columns as Markdown, from the
// descriptors, so the documentation cannot drift from the code.
func columnReference() string {
	var b strings.Builder
	for _, d := range Datasets() {
		fmt.Fprintf(&b, "\n### `%s`: %s\n\n", d.Name(), d.Doc())
		b.WriteString("| column | ECS field | Arrow / Parquet | ClickHouse | description |\n|---|---|---|---|---|\n")
		for _, f := range d.Fields() {
			if f.Common && d.Name() != DatasetAuth {
				continue
			}
			ecs := "`" + f.ECS + "`"
			if f.ECS == "" {
				ecs = "(none)"
			}
			ch := f.ClickHouse
			if f.Kind == KindTime {
				ch += " + `" + f.Name + "_ms` UInt16"
			}
			if f.LowCardinality {
				ch += " (LowCardinality option)"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, ecs, f.Arrow, ch, f.Doc)
		}
		if d.Name() == DatasetAuth {
			b.WriteString("\nThe first nine columns above are common to every dataset and are not repeated below.\n")
		}
	}
	return b.String()
}

func TestDocsColumnReference(t *testing.T) {
	const path = "../docs/schemas.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-columns markers", path)
	}
	want := doc[:i+len(docBegin)] + "\n" + columnReference() + "\n" + doc[j:]
	if want == doc {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s column reference is stale; run go test ./schemas -run TestDocsColumnReference -update", path)
}
