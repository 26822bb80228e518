package deployment

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
)

// Annotations and labels kubectl and users rely on.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	ChangeCauseAnnotation     = "kubernetes.io/change-cause"
	LastAppliedAnnotation     = "kubectl.kubernetes.io/last-applied-configuration"
	RollbackToAnnotation      = "deprecated.deployment.rollback.to"
	// PodTemplateHashLabel tells the ReplicaSets (and their pods) of one deployment apart.
	PodTemplateHashLabel = appsv1.DefaultDeploymentUniqueLabelKey

	// maxRevisionHistoryChars bounds the revision-history annotation.
	maxRevisionHistoryChars = 2000
)

// Condition reasons, as Kubernetes writes them.
const (
	ReasonNewRSCreated        = "NewReplicaSetCreated"
	ReasonFoundNewRS          = "FoundNewReplicaSet"
	ReasonRSUpdated           = "ReplicaSetUpdated"
	ReasonNewRSAvailable      = "NewReplicaSetAvailable"
	ReasonTimedOut            = "ProgressDeadlineExceeded"
	ReasonPaused              = "DeploymentPaused"
	ReasonResumed             = "DeploymentResumed"
	ReasonFailedRSCreate      = "ReplicaSetCreateError"
	ReasonMinimumAvailable    = "MinimumReplicasAvailable"
	ReasonMinimumUnavailable  = "MinimumReplicasUnavailable"
	eventScalingReplicaSet    = "ScalingReplicaSet"
	eventSelectingAll         = "SelectingAll"
	eventFailedCreate         = "FailedCreate"
	messageMinimumAvailable   = "Deployment has minimum availability."
	messageMinimumUnavailable = "Deployment does not have minimum availability."
)

// --- pod template hash ---

// TemplateHash is the pod-template-hash of a template: a 32-bit FNV-1a hash of the
// template's canonical JSON form (and the collision count, when set), rendered as a short
// string of consonants and digits that can never spell a word.
func TemplateHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	b, err := json.Marshal(template)
	if err != nil {
		// A PodTemplateSpec always marshals; fall back to its printed form regardless.
		b = []byte(fmt.Sprintf("%#v", template))
	}
	h.Write(b)
	if collisionCount != nil {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(*collisionCount))
		h.Write(buf[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// EqualIgnoreHash reports whether two templates are the same apart from the
// pod-template-hash label.
func EqualIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, PodTemplateHashLabel)
	delete(b.Labels, PodTemplateHashLabel)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

func cloneAndAddLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func cloneSelectorAndAddLabel(sel *metav1.LabelSelector, k, v string) *metav1.LabelSelector {
	out := sel.DeepCopy()
	if out == nil {
		out = &metav1.LabelSelector{}
	}
	out.MatchLabels = cloneAndAddLabel(out.MatchLabels, k, v)
	return out
}

// --- replica arithmetic ---

func replicas(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// scaledValue resolves an int-or-percent against total, rounding percentages up or down.
func scaledValue(v *intstr.IntOrString, total int32, roundUp bool) (int32, error) {
	if v == nil {
		return 0, nil
	}
	if v.Type == intstr.Int {
		return v.IntVal, nil
	}
	s := strings.TrimSuffix(v.StrVal, "%")
	if s == v.StrVal {
		// A plain number in a string is accepted as an absolute value.
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("invalid value for IntOrString: invalid value %q", v.StrVal)
		}
		return int32(n), nil
	}
	pct, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("invalid value for IntOrString: invalid value %q", v.StrVal)
	}
	f := float64(pct) * float64(total) / 100
	if roundUp {
		return int32(math.Ceil(f)), nil
	}
	return int32(math.Floor(f)), nil
}

// ResolveFenceposts turns maxSurge and maxUnavailable into absolute numbers for desired
// replicas: surge rounds up, unavailability down, and if both come to 0 one pod may be
// unavailable (else a rollout could never start).
func ResolveFenceposts(maxSurge, maxUnavailable *intstr.IntOrString, desired int32) (int32, int32, error) {
	surge, err := scaledValue(maxSurge, desired, true)
	if err != nil {
		return 0, 0, err
	}
	unavailable, err := scaledValue(maxUnavailable, desired, false)
	if err != nil {
		return 0, 0, err
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable, nil
}

func isRollingUpdate(d *appsv1.Deployment) bool {
	return d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType
}

func rollingParams(d *appsv1.Deployment) (*intstr.IntOrString, *intstr.IntOrString) {
	if d.Spec.Strategy.RollingUpdate == nil {
		def := intstr.FromString("25%")
		return &def, &def
	}
	return d.Spec.Strategy.RollingUpdate.MaxSurge, d.Spec.Strategy.RollingUpdate.MaxUnavailable
}

// MaxSurge is how many pods a rolling update may run above spec.replicas.
func MaxSurge(d *appsv1.Deployment) int32 {
	if !isRollingUpdate(d) {
		return 0
	}
	s, u := rollingParams(d)
	surge, _, _ := ResolveFenceposts(s, u, replicas(d.Spec.Replicas))
	return surge
}

// MaxUnavailable is how many of spec.replicas pods may be unavailable during a rolling update.
func MaxUnavailable(d *appsv1.Deployment) int32 {
	if !isRollingUpdate(d) || replicas(d.Spec.Replicas) == 0 {
		return 0
	}
	s, u := rollingParams(d)
	_, unavailable, _ := ResolveFenceposts(s, u, replicas(d.Spec.Replicas))
	return min(unavailable, replicas(d.Spec.Replicas))
}

func specReplicaCount(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		if rs != nil {
			n += replicas(rs.Spec.Replicas)
		}
	}
	return n
}

func statusReplicaCount(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		if rs != nil {
			n += rs.Status.Replicas
		}
	}
	return n
}

func readyReplicaCount(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		if rs != nil {
			n += rs.Status.ReadyReplicas
		}
	}
	return n
}

func availableReplicaCount(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		if rs != nil {
			n += rs.Status.AvailableReplicas
		}
	}
	return n
}

// activeSets keeps the ReplicaSets with spec.replicas > 0.
func activeSets(sets []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range sets {
		if rs != nil && replicas(rs.Spec.Replicas) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

// NewRSNewReplicas is the size the new ReplicaSet may grow to now.
func NewRSNewReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := replicas(d.Spec.Replicas)
	if !isRollingUpdate(d) {
		return want
	}
	maxTotal := want + MaxSurge(d)
	current := specReplicaCount(all)
	if current >= maxTotal {
		return replicas(newRS.Spec.Replicas)
	}
	up := min(maxTotal-current, want-replicas(newRS.Spec.Replicas))
	return replicas(newRS.Spec.Replicas) + up
}

// --- annotations ---

// Revision is the revision annotation of an object (0 when missing or malformed).
func Revision(obj metav1.Object) int64 {
	v, err := strconv.ParseInt(obj.GetAnnotations()[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func maxRevision(sets []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range sets {
		m = max(m, Revision(rs))
	}
	return m
}

// skipCopy are deployment annotations that stay off its ReplicaSets.
var skipCopy = map[string]bool{
	LastAppliedAnnotation: true, RevisionAnnotation: true, RevisionHistoryAnnotation: true,
	DesiredReplicasAnnotation: true, MaxReplicasAnnotation: true, RollbackToAnnotation: true,
}

// copyAnnotations copies the deployment's annotations (change-cause among them) onto rs.
func copyAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		if skipCopy[k] {
			continue
		}
		if cur, ok := rs.Annotations[k]; ok && cur == v {
			continue
		}
		rs.Annotations[k] = v
		changed = true
	}
	return changed
}

// setReplicasAnnotations records the deployment size (and size plus surge) on rs, which
// proportional scaling reads later.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, max int32) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	d, m := strconv.Itoa(int(desired)), strconv.Itoa(int(max))
	changed := rs.Annotations[DesiredReplicasAnnotation] != d || rs.Annotations[MaxReplicasAnnotation] != m
	rs.Annotations[DesiredReplicasAnnotation] = d
	rs.Annotations[MaxReplicasAnnotation] = m
	return changed
}

func replicasAnnotationsNeedUpdate(rs *appsv1.ReplicaSet, desired, max int32) bool {
	return rs.Annotations[DesiredReplicasAnnotation] != strconv.Itoa(int(desired)) ||
		rs.Annotations[MaxReplicasAnnotation] != strconv.Itoa(int(max))
}

func intAnnotation(rs *appsv1.ReplicaSet, key string) (int32, bool) {
	v, ok := rs.Annotations[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}

// setNewRSAnnotations brings the annotations of the new ReplicaSet up to date: the
// deployment's annotations, the new revision (remembering the revisions it had before in
// revision-history when an old template comes back), and for a ReplicaSet being created the
// replica annotations.
func setNewRSAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string, exists bool) bool {
	changed := copyAnnotations(d, rs)
	oldRevision := rs.Annotations[RevisionAnnotation]
	oldN, err := strconv.ParseInt(oldRevision, 10, 64)
	if err != nil {
		if oldRevision != "" {
			return false
		}
		oldN = 0
	}
	newN, err := strconv.ParseInt(newRevision, 10, 64)
	if err != nil {
		return false
	}
	if oldN < newN {
		rs.Annotations[RevisionAnnotation] = newRevision
		changed = true
		if oldRevision != "" {
			history := rs.Annotations[RevisionHistoryAnnotation]
			var revs []string
			if history != "" {
				revs = strings.Split(history, ",")
			}
			revs = append(revs, oldRevision)
			for len(revs) > 1 && len(strings.Join(revs, ",")) > maxRevisionHistoryChars {
				revs = revs[1:]
			}
			rs.Annotations[RevisionHistoryAnnotation] = strings.Join(revs, ",")
		}
	}
	if !exists && setReplicasAnnotations(rs, replicas(d.Spec.Replicas), replicas(d.Spec.Replicas)+MaxSurge(d)) {
		changed = true
	}
	return changed
}

// --- finding ReplicaSets ---

// byCreation sorts oldest first, then by name.
type byCreation []*appsv1.ReplicaSet

func (o byCreation) Len() int      { return len(o) }
func (o byCreation) Swap(i, j int) { o[i], o[j] = o[j], o[i] }
func (o byCreation) Less(i, j int) bool {
	if o[i].CreationTimestamp.Equal(&o[j].CreationTimestamp) {
		return o[i].Name < o[j].Name
	}
	return o[i].CreationTimestamp.Before(&o[j].CreationTimestamp)
}

// byRevision sorts lowest revision first.
type byRevision []*appsv1.ReplicaSet

func (o byRevision) Len() int      { return len(o) }
func (o byRevision) Swap(i, j int) { o[i], o[j] = o[j], o[i] }
func (o byRevision) Less(i, j int) bool {
	ri, rj := Revision(o[i]), Revision(o[j])
	if ri == rj {
		return byCreation(o).Less(i, j)
	}
	return ri < rj
}

// bySize sorts largest first; among equals newer first (newer=true) or older first.
func sortBySize(sets []*appsv1.ReplicaSet, newer bool) {
	sort.SliceStable(sets, func(i, j int) bool {
		a, b := sets[i], sets[j]
		if replicas(a.Spec.Replicas) != replicas(b.Spec.Replicas) {
			return replicas(a.Spec.Replicas) > replicas(b.Spec.Replicas)
		}
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.Name < b.Name
		}
		if newer {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
}

// FindNewReplicaSet returns the ReplicaSet whose template equals the deployment's (ignoring
// the hash label); the oldest one if several do.
func FindNewReplicaSet(d *appsv1.Deployment, sets []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sorted := append([]*appsv1.ReplicaSet(nil), sets...)
	sort.Sort(byCreation(sorted))
	for _, rs := range sorted {
		if EqualIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

// findActiveOrLatest returns the only active ReplicaSet, or, when none is active, the new
// one or the newest old one; nil when several are active.
func findActiveOrLatest(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(old) == 0 {
		return nil
	}
	sorted := append([]*appsv1.ReplicaSet(nil), old...)
	sort.Sort(sort.Reverse(byCreation(sorted)))
	all := activeSets(append(sorted, newRS))
	switch len(all) {
	case 0:
		if newRS != nil {
			return newRS
		}
		return sorted[0]
	case 1:
		return all[0]
	default:
		return nil
	}
}

// isSaturated reports whether rs runs the deployment's full size, all available.
func isSaturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	want := replicas(d.Spec.Replicas)
	return ok && desired == want && replicas(rs.Spec.Replicas) == want && rs.Status.AvailableReplicas == want
}

// --- proportional scaling ---

// proportion is how many replicas rs gets of toAdd (negative: loses), given added so far.
func proportion(rs *appsv1.ReplicaSet, d *appsv1.Deployment, toAdd, added int32) int32 {
	if rs == nil || replicas(rs.Spec.Replicas) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	fraction := fraction(rs, d)
	allowed := toAdd - added
	if toAdd > 0 {
		return min(fraction, allowed)
	}
	return max(fraction, allowed)
}

// fraction is how much rs should change for its share of the deployment's new size, going
// by the size the deployment had when rs was last scaled (the max-replicas annotation).
func fraction(rs *appsv1.ReplicaSet, d *appsv1.Deployment) int32 {
	if replicas(d.Spec.Replicas) == 0 {
		return -replicas(rs.Spec.Replicas)
	}
	total := replicas(d.Spec.Replicas) + MaxSurge(d)
	annotated, ok := intAnnotation(rs, MaxReplicasAnnotation)
	if !ok || annotated == 0 {
		annotated = d.Status.Replicas
	}
	if annotated == 0 {
		return 0
	}
	size := float64(replicas(rs.Spec.Replicas)) * float64(total) / float64(annotated)
	return int32(math.Round(size)) - replicas(rs.Spec.Replicas)
}

// proportionalSizes computes the new sizes of the active ReplicaSets when the deployment is
// resized in the middle of a rollout: the change is shared in proportion to their sizes, and
// what rounding leaves over goes to the largest. It returns the sizes by name and "up",
// "down" or "" for the direction.
func proportionalSizes(d *appsv1.Deployment, active []*appsv1.ReplicaSet) ([]*appsv1.ReplicaSet, map[string]int32, string) {
	sets := append([]*appsv1.ReplicaSet(nil), active...)
	current := specReplicaCount(sets)
	var allowed int32
	if replicas(d.Spec.Replicas) > 0 {
		allowed = replicas(d.Spec.Replicas) + MaxSurge(d)
	}
	toAdd := allowed - current
	op := ""
	switch {
	case toAdd > 0:
		sortBySize(sets, true)
		op = "up"
	case toAdd < 0:
		sortBySize(sets, false)
		op = "down"
	}
	sizes := make(map[string]int32, len(sets))
	var added int32
	for _, rs := range sets {
		if toAdd != 0 {
			p := proportion(rs, d, toAdd, added)
			sizes[rs.Name] = replicas(rs.Spec.Replicas) + p
			added += p
		} else {
			sizes[rs.Name] = replicas(rs.Spec.Replicas)
		}
	}
	if len(sets) > 0 && toAdd != 0 {
		first := sets[0].Name
		sizes[first] += toAdd - added
		if sizes[first] < 0 {
			sizes[first] = 0
		}
	}
	return sets, sizes, op
}

// --- conditions and status ---

func getCondition(st appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

func newCondition(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string, now time.Time) appsv1.DeploymentCondition {
	n := metav1.NewTime(now)
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: n, LastTransitionTime: n}
}

// setCondition adds or replaces a condition; one with the same status and reason is left as
// it is, and the transition time is kept when only the reason changes.
func setCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := getCondition(*st, c.Type)
	if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		return
	}
	if cur != nil && cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	removeCondition(st, c.Type)
	st.Conditions = append(st.Conditions, c)
}

func removeCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	var kept []appsv1.DeploymentCondition
	for _, c := range st.Conditions {
		if c.Type != t {
			kept = append(kept, c)
		}
	}
	st.Conditions = kept
}

func hasProgressDeadline(d *appsv1.Deployment) bool {
	return d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds != math.MaxInt32
}

// calculateStatus is the deployment status its ReplicaSets amount to, with the Available
// condition; the other conditions are carried over.
func calculateStatus(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now time.Time) appsv1.DeploymentStatus {
	available := availableReplicaCount(all)
	unavailable := max(specReplicaCount(all)-available, 0)
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            statusReplicaCount(all),
		UpdatedReplicas:     statusReplicaCount([]*appsv1.ReplicaSet{newRS}),
		ReadyReplicas:       readyReplicaCount(all),
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		CollisionCount:      d.Status.CollisionCount,
	}
	for _, c := range d.Status.Conditions {
		st.Conditions = append(st.Conditions, *c.DeepCopy())
	}
	if available >= replicas(d.Spec.Replicas)-MaxUnavailable(d) {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumAvailable, messageMinimumAvailable, now))
	} else {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumUnavailable, messageMinimumUnavailable, now))
	}
	return st
}

// deploymentComplete: every replica updated and available, nothing old left, spec observed.
func deploymentComplete(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	want := replicas(d.Spec.Replicas)
	return st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want &&
		st.ObservedGeneration >= d.Generation
}

// deploymentProgressing: the new status moved forward from the recorded one.
func deploymentProgressing(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	old := d.Status
	return st.UpdatedReplicas > old.UpdatedReplicas ||
		st.Replicas-st.UpdatedReplicas < old.Replicas-old.UpdatedReplicas ||
		st.ReadyReplicas > old.ReadyReplicas ||
		st.AvailableReplicas > old.AvailableReplicas
}

// deploymentTimedOut: no progress for progressDeadlineSeconds since the Progressing
// condition last moved.
func deploymentTimedOut(d *appsv1.Deployment, st *appsv1.DeploymentStatus, now time.Time) bool {
	if !hasProgressDeadline(d) {
		return false
	}
	c := getCondition(*st, appsv1.DeploymentProgressing)
	if c == nil {
		return false
	}
	switch c.Reason {
	case ReasonNewRSAvailable:
		return false
	case ReasonTimedOut:
		return true
	}
	deadline := c.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second)
	return deadline.Before(now)
}
