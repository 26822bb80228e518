package core

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func endpoints() *registry.Resource {
	r := newResource("endpoints", "Endpoints", "endpoints", true,
		func() runtime.Object { return &corev1.Endpoints{} },
		func() runtime.Object { return &corev1.EndpointsList{} })
	r.ShortNames = []string{"ep"}
	r.NoGeneration = true
	r.Default = func(obj runtime.Object) { defaultEndpoints(obj.(*corev1.Endpoints)) }
	r.Validate = func(obj runtime.Object) field.ErrorList { return validateEndpoints(obj.(*corev1.Endpoints), nil) }
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		col("Endpoints", "string", corev1.Endpoints{}.SwaggerDoc()["subsets"], 0),
		registry.AgeCol,
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		ep := obj.(*corev1.Endpoints)
		return []interface{}{ep.Name, formatEndpoints(ep), registry.Age(ep.CreationTimestamp, now)}
	}
	return r
}

func defaultEndpoints(ep *corev1.Endpoints) {
	for i := range ep.Subsets {
		for j := range ep.Subsets[i].Ports {
			if ep.Subsets[i].Ports[j].Protocol == "" {
				ep.Subsets[i].Ports[j].Protocol = corev1.ProtocolTCP
			}
		}
	}
}

func validateEndpoints(ep, old *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	var oldIPs []string
	if old != nil {
		for _, ss := range old.Subsets {
			for _, a := range ss.Addresses {
				oldIPs = append(oldIPs, a.IP)
			}
			for _, a := range ss.NotReadyAddresses {
				oldIPs = append(oldIPs, a.IP)
			}
		}
	}
	p := field.NewPath("subsets")
	for i := range ep.Subsets {
		ss := &ep.Subsets[i]
		ip := p.Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(ip, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j := range ss.Addresses {
			errs = append(errs, validateEndpointAddress(&ss.Addresses[j], oldIPs, ip.Child("addresses").Index(j))...)
		}
		for j := range ss.NotReadyAddresses {
			errs = append(errs, validateEndpointAddress(&ss.NotReadyAddresses[j], oldIPs, ip.Child("notReadyAddresses").Index(j))...)
		}
		for j := range ss.Ports {
			errs = append(errs, validateEndpointPort(&ss.Ports[j], len(ss.Ports) > 1, ip.Child("ports").Index(j))...)
		}
	}
	return errs
}

func validateEndpointAddress(a *corev1.EndpointAddress, oldIPs []string, p *field.Path) field.ErrorList {
	errs := validateLegacyIP(p.Child("ip"), a.IP, oldIPs)
	if a.Hostname != "" {
		errs = append(errs, validateDNS1123Label(a.Hostname, p.Child("hostname"))...)
	}
	if a.NodeName != nil {
		errs = append(errs, validateNameRef(*a.NodeName, apivalidation.NameIsDNSSubdomain, p.Child("nodeName"))...)
	}
	if len(errs) == 0 {
		// As in Kubernetes, endpoints may not be loopback addresses: no proxy can reach them.
		errs = append(errs, validateNonSpecialIP(a.IP, false, p.Child("ip"))...)
	}
	return errs
}

func validateEndpointPort(port *corev1.EndpointPort, requireName bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if requireName && port.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else if port.Name != "" {
		errs = append(errs, validateDNS1123Label(port.Name, p.Child("name"))...)
	}
	errs = append(errs, msgsToInvalid(p.Child("port"), port.Port, validation.IsValidPortNum(int(port.Port)))...)
	if port.Protocol == "" {
		errs = append(errs, field.Required(p.Child("protocol"), ""))
	} else if !supportedPortProtocols.Has(port.Protocol) {
		errs = append(errs, field.NotSupported(p.Child("protocol"), port.Protocol, sets.List(supportedPortProtocols)))
	}
	if port.AppProtocol != nil {
		errs = append(errs, validateQualifiedName(*port.AppProtocol, p.Child("appProtocol"))...)
	}
	return errs
}

// formatEndpoints lists up to three endpoints ("10.0.0.1:80,10.0.0.2:80 + 3 more...").
func formatEndpoints(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return "<none>"
	}
	const max = 3
	var list []string
	more := false
	count := 0
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, a.IP)
			}
			continue
		}
		for _, port := range ss.Ports {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, net.JoinHostPort(a.IP, strconv.Itoa(int(port.Port))))
			}
		}
	}
	out := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", out, count-max)
	}
	return out
}
