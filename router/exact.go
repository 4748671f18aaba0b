package router

// evalKeys evaluates node i of a statement's key tree on the key values themselves (where
// evalKey works on their shards) into out, and reports whether the values the statement's
// rows are restricted to are known exactly: a leaf gives its values (unless they are more than
// MaxExactKeys, unknown or invalid); an AND the intersection of its children whose values are
// known (none known, or an empty intersection — a contradiction — is not exact); an OR, and
// independent parts of a statement, the union of their children when every child is known
// and the union stays within MaxExactKeys. out is undefined when it returns false.
func evalKeys(nodes []keyNode, acc []leafAcc, i int32, out *KeySet) bool {
	n := &nodes[i]
	if n.op == keyLeaf {
		a := &acc[n.leaf]
		if a.flags != 0 || a.keys.n == 0 {
			return false
		}
		*out = a.keys
		return true
	}
	if len(n.kids) == 1 {
		return evalKeys(nodes, acc, n.kids[0], out)
	}
	var kid KeySet
	if n.op == keyAnd {
		known := false
		for _, k := range n.kids {
			switch {
			case !evalKeys(nodes, acc, k, &kid):
			case known:
				out.intersectWith(&kid)
			default:
				*out, known = kid, true
			}
		}
		return known && out.n > 0
	}
	// keyOr, keyAny
	out.n = 0
	for _, k := range n.kids {
		if !evalKeys(nodes, acc, k, &kid) || !out.unionWith(&kid) {
			return false
		}
	}
	return out.n > 0
}
