package apiserver

import (
	"bytes"
	"encoding/binary"
	"io"

	"encoding/json"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// writeProtoEvent writes one event of a protobuf watch stream: a 4-byte big-endian length,
// then a metav1.WatchEvent whose object is the protobuf-enveloped object (the framing
// client-go's protobuf stream decoder reads).
func writeProtoEvent(w io.Writer, typ watch.EventType, obj runtime.Object) error {
	var buf bytes.Buffer
	if err := protoCodec.Encode(obj, &buf); err != nil {
		return err
	}
	we := &metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: buf.Bytes()}}
	data, err := we.Marshal()
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(data)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

func tableVersion(v string) string {
	if v == "" {
		return "v1"
	}
	return v
}

// watchEvent is the wire form of one watch event.
type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	opts, err := s.listOptions(r, ep)
	if err != nil {
		writeError(w, r, err, ep.res.GroupResource(), "")
		return
	}
	prefix := ep.listPrefix(info.Namespace)
	if info.Name != "" {
		// A watch on one object (GET .../pods/name?watch=true, or a fieldSelector on the
		// name, which list watchers send) narrows to its key.
		prefix = ep.key(info.Namespace, info.Name)
		opts.Recursive = false
	}
	// Like Kubernetes, a watch ends after timeoutSeconds, or a randomised 30–60 minutes.
	timeout := time.Duration(1800+rand.IntN(1800)) * time.Second
	if v := r.URL.Query().Get("timeoutSeconds"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	ctx := r.Context()
	wi, err := ep.store.Watch(ctx, prefix, opts)
	if err != nil {
		writeError(w, r, err, ep.res.GroupResource(), "")
		return
	}
	defer wi.Stop()
	flusher, _ := w.(http.Flusher)
	kind, version := negotiate(r)
	proto := kind == outputProtobuf || kind == outputPartialMetadataProtobuf
	if proto {
		w.Header().Set("Content-Type", protobufType+";stream=watch")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	enc := json.NewEncoder(w)
	headers := true
	s.metrics.watchers.Inc()
	defer s.metrics.watchers.Dec()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			obj := ev.Object
			switch {
			case ev.Type == watch.Bookmark && kind.partial():
				obj = partialObject(ev.Object, version)
			case ev.Type == watch.Bookmark && kind == outputTable:
				// A bookmark in a table watch is an empty table at that resourceVersion.
				t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/" + tableVersion(version)}}
				if m, err := meta.Accessor(ev.Object); err == nil {
					t.ResourceVersion = m.GetResourceVersion()
				}
				obj = t
			case ev.Type == watch.Bookmark || ev.Type == watch.Error:
				// Bookmarks carry only a resourceVersion, in the resource's own kind.
				if ro, ok := ev.Object.(runtime.Object); ok && ro.GetObjectKind().GroupVersionKind().Empty() {
					ro.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
				}
			case kind == outputTable:
				obj = s.toTable(r, ep, ev.Object, version, headers)
				headers = false
			case kind.partial():
				obj = partialObject(ev.Object, version)
			}
			if proto {
				if err := writeProtoEvent(w, ev.Type, obj); err != nil {
					return
				}
			} else if err := enc.Encode(watchEvent{Type: ev.Type, Object: obj}); err != nil {
				return
			}
			// Flush only when no further event is waiting, so bursts go out in one write.
			if flusher != nil && len(wi.ResultChan()) == 0 {
				flusher.Flush()
			}
		}
	}
}
