package cache

// bumpItem is one generation to bump: its key, its database (for the fallback below), and
// the group and LSN to record.
type bumpItem struct {
	key   string
	db    string
	group string
	lsn   uint64
}

// pendingBumps is the bounded retry list of bumps that could not reach Redis. Bumps of one
// key merge into one (one increment makes every older key unreachable, and the recorded
// LSN follows mergeLSN as if they had been applied in order). When limit keys are held, a
// further key is replaced by its database's GenGlobal with an unknown LSN: coarser, never
// less safe.
//
// It is not safe for concurrent use; the Cache guards it with its state mutex.
type pendingBumps struct {
	limit    int
	m        map[string]bumpItem // by key
	overflow map[string]bumpItem // GenGlobal bumps, by database
}

func newPendingBumps(limit int) *pendingBumps {
	return &pendingBumps{limit: limit, m: make(map[string]bumpItem), overflow: make(map[string]bumpItem)}
}

// add records items, each newer than everything held.
func (p *pendingBumps) add(items []bumpItem) {
	for _, it := range items {
		if old, ok := p.m[it.key]; ok {
			it.group, it.lsn = mergeBump(old.group, old.lsn, it.group, it.lsn)
			p.m[it.key] = it
			continue
		}
		if len(p.m) < p.limit {
			p.m[it.key] = it
			continue
		}
		p.overflow[it.db] = p.globalItem(it)
	}
}

// restore puts back items taken earlier (older than everything held now).
func (p *pendingBumps) restore(items []bumpItem) {
	for _, it := range items {
		if newer, ok := p.m[it.key]; ok {
			newer.group, newer.lsn = mergeBump(it.group, it.lsn, newer.group, newer.lsn)
			p.m[it.key] = newer
			continue
		}
		if newer, ok := p.overflow[it.db]; ok && newer.key == it.key {
			newer.group, newer.lsn = mergeBump(it.group, it.lsn, newer.group, newer.lsn)
			p.overflow[it.db] = newer
			continue
		}
		if len(p.m) < p.limit {
			p.m[it.key] = it
			continue
		}
		if _, ok := p.overflow[it.db]; !ok {
			p.overflow[it.db] = p.globalItem(it)
		}
	}
}

// globalItem is the fallback for it: its database's GenGlobal, with an unknown LSN.
func (p *pendingBumps) globalItem(it bumpItem) bumpItem {
	key, _ := genKey(Gen{Kind: GenGlobal, DB: it.db}) // GenGlobal always has a key
	return bumpItem{key: key, db: it.db, group: it.group}
}

// take removes and returns everything held.
func (p *pendingBumps) take() []bumpItem {
	if p.len() == 0 {
		return nil
	}
	out := make([]bumpItem, 0, p.len())
	for _, it := range p.overflow {
		if held, dup := p.m[it.key]; dup {
			// The database's GenGlobal is also held by key: bump it once, LSN unknown.
			held.lsn = 0
			p.m[it.key] = held
			continue
		}
		out = append(out, it)
	}
	for _, it := range p.m {
		out = append(out, it)
	}
	clear(p.m)
	clear(p.overflow)
	return out
}

// len returns how many bumps are held.
func (p *pendingBumps) len() int { return len(p.m) + len(p.overflow) }
