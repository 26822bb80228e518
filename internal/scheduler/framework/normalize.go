package framework

// DefaultNormalizeScore scales scores so the largest becomes maxPriority; with reverse,
// the smallest does instead (fewer intolerable taints is better). All-zero scores become
// maxPriority when reversed and stay 0 otherwise.
func DefaultNormalizeScore(maxPriority int64, reverse bool, scores NodeScoreList) {
	var maxCount int64
	for i := range scores {
		maxCount = max(maxCount, scores[i].Score)
	}
	if maxCount == 0 {
		if reverse {
			for i := range scores {
				scores[i].Score = maxPriority
			}
		}
		return
	}
	for i := range scores {
		s := maxPriority * scores[i].Score / maxCount
		if reverse {
			s = maxPriority - s
		}
		scores[i].Score = s
	}
}
