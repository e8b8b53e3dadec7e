package rules

import (
	"fmt"
	"slices"
	"strings"
)

// checkPattern validates an "on" pattern: dotted tokens, where "*" matches
// one token and ">" (last only) matches one or more.
func checkPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	toks := strings.Split(p, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("pattern %q has an empty segment", p)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf(`pattern %q: ">" must be the last segment`, p)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*> \t"):
			return fmt.Errorf("pattern %q: wildcards must be whole segments", p)
		}
	}
	if len(toks) < 2 && toks[0] != ">" {
		return fmt.Errorf("pattern %q: want source.type, such as comm100.chat.ended or comm100.>", p)
	}
	return nil
}

// index maps event topics to the rules whose patterns match them, so that an
// event is only checked against its candidates. It is a trie over the dotted
// tokens of the patterns.
type index struct {
	root node
}

type node struct {
	children map[string]*node
	star     *node
	rules    []int // rules whose pattern ends here
	tail     []int // rules whose pattern ends here with ">"
}

func (ix *index) add(pattern string, rule int) {
	n := &ix.root
	for _, t := range strings.Split(pattern, ".") {
		switch t {
		case ">":
			n.tail = append(n.tail, rule)
			return
		case "*":
			if n.star == nil {
				n.star = &node{}
			}
			n = n.star
		default:
			if n.children == nil {
				n.children = map[string]*node{}
			}
			c := n.children[t]
			if c == nil {
				c = &node{}
				n.children[t] = c
			}
			n = c
		}
	}
	n.rules = append(n.rules, rule)
}

// match appends to dst the rules matching topic, in rule order, without repeats.
func (ix *index) match(topic string, dst []int) []int {
	dst = ix.root.match(topic, dst)
	if len(dst) > 1 {
		slices.Sort(dst)
		dst = slices.Compact(dst)
	}
	return dst
}

func (n *node) match(rest string, dst []int) []int {
	if rest == "" {
		return append(dst, n.rules...)
	}
	dst = append(dst, n.tail...)
	tok, after, _ := strings.Cut(rest, ".")
	if c := n.children[tok]; c != nil {
		dst = c.match(after, dst)
	}
	if n.star != nil {
		dst = n.star.match(after, dst)
	}
	return dst
}

// matchPattern reports whether topic matches pattern, for tests and eval.
func matchPattern(pattern, topic string) bool {
	var ix index
	ix.add(pattern, 0)
	return len(ix.match(topic, nil)) > 0
}
