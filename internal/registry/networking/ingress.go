package networking

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// ingressClassAnnotation is the deprecated way of naming an ingress's class.
const ingressClassAnnotation = "kubernetes.io/ingress.class"

var (
	invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffixes  = []string{"/..", "/."}
	pathTypes            = []networkingv1.PathType{networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific, networkingv1.PathTypePrefix}
)

func ingresses() *registry.Resource {
	return &registry.Resource{
		Group:        networkingv1.GroupName,
		Version:      "v1",
		Resource:     "ingresses",
		Kind:         "Ingress",
		ListKind:     "IngressList",
		SingularName: "ingress",
		Namespaced:   true,
		ShortNames:   []string{"ing"},
		New:          func() runtime.Object { return &networkingv1.Ingress{} },
		NewList:      func() runtime.Object { return &networkingv1.IngressList{} },
		HasStatus:    true,
		Validate: func(obj runtime.Object) field.ErrorList {
			ing := obj.(*networkingv1.Ingress)
			errs := validateIngressSpec(&ing.Spec, field.NewPath("spec"))
			if v, ok := ing.Annotations[ingressClassAnnotation]; ok && ing.Spec.IngressClassName != nil && v != *ing.Spec.IngressClassName {
				errs = append(errs, field.Invalid(field.NewPath("annotations").Child(ingressClassAnnotation), v, "must match `ingressClassName` when both are specified"))
			}
			return errs
		},
		ValidateStatusUpdate: func(obj, _ runtime.Object) field.ErrorList {
			return validateLoadBalancerStatus(&obj.(*networkingv1.Ingress).Status.LoadBalancer, field.NewPath("status", "loadBalancer"))
		},
		Columns: []metav1.TableColumnDefinition{
			registry.NameCol,
			registry.Col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration", 0),
			registry.Col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule", 0),
			registry.Col("Address", "string", "Address is a list containing ingress points for the load-balancer", 0),
			registry.Col("Ports", "string", "Ports of TLS configurations that open", 0),
			registry.AgeCol,
		},
		Row: func(obj runtime.Object, now time.Time) []interface{} {
			ing := obj.(*networkingv1.Ingress)
			class := "<none>"
			if ing.Spec.IngressClassName != nil {
				class = *ing.Spec.IngressClassName
			}
			ports := "80"
			if len(ing.Spec.TLS) != 0 {
				ports = "80, 443"
			}
			return []interface{}{ing.Name, class, formatHosts(ing.Spec.Rules), formatAddress(ing.Status.LoadBalancer), ports, registry.Age(ing.CreationTimestamp, now)}
		},
	}
}

// formatHosts lists the first three rule hosts, "*" when no rule names one.
func formatHosts(rules []networkingv1.IngressRule) string {
	const max = 3
	var list []string
	more := false
	for _, r := range rules {
		if len(list) == max {
			more = true
		}
		if !more && r.Host != "" {
			list = append(list, r.Host)
		}
	}
	if len(list) == 0 {
		return "*"
	}
	if more {
		return fmt.Sprintf("%s + %d more...", strings.Join(list, ","), len(rules)-max)
	}
	return strings.Join(list, ",")
}

// formatAddress lists the load balancer's IPs or host names, sorted and without repeats.
func formatAddress(s networkingv1.IngressLoadBalancerStatus) string {
	var list []string
	for _, in := range s.Ingress {
		a := in.IP
		if a == "" {
			a = in.Hostname
		}
		if a != "" && !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	slices.Sort(list)
	return strings.Join(list, ",")
}

func validateIngressSpec(spec *networkingv1.IngressSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.Rules) == 0 && spec.DefaultBackend == nil {
		errs = append(errs, field.Invalid(fldPath, spec.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if spec.DefaultBackend != nil {
		errs = append(errs, validateBackend(spec.DefaultBackend, fldPath.Child("defaultBackend"))...)
	}
	for i, rule := range spec.Rules {
		rp := fldPath.Child("rules").Index(i)
		if rule.Host != "" {
			hp := rp.Child("host")
			if net.ParseIP(rule.Host) != nil {
				errs = append(errs, field.Invalid(hp, rule.Host, "must be a DNS name, not an IP address"))
			}
			if strings.Contains(rule.Host, "*") {
				errs = append(errs, invalidEach(hp, rule.Host, utilvalidation.IsWildcardDNS1123Subdomain(rule.Host))...)
			} else {
				errs = append(errs, invalidEach(hp, rule.Host, content.IsDNS1123Subdomain(rule.Host))...)
			}
		}
		if rule.HTTP != nil {
			pp := rp.Child("http", "paths")
			if len(rule.HTTP.Paths) == 0 {
				errs = append(errs, field.Required(pp, ""))
			}
			for j := range rule.HTTP.Paths {
				errs = append(errs, validatePath(&rule.HTTP.Paths[j], pp.Index(j))...)
			}
		}
	}
	for i, tls := range spec.TLS {
		tp := fldPath.Child("tls").Index(i)
		for j, host := range tls.Hosts {
			if strings.Contains(host, "*") {
				errs = append(errs, invalidEach(tp.Child("hosts").Index(j), host, utilvalidation.IsWildcardDNS1123Subdomain(host))...)
			} else {
				errs = append(errs, invalidEach(tp.Child("hosts").Index(j), host, content.IsDNS1123Subdomain(host))...)
			}
		}
		if tls.SecretName != "" {
			errs = append(errs, invalidEach(tp.Child("secretName"), tls.SecretName, apivalidation.NameIsDNSSubdomain(tls.SecretName, false))...)
		}
	}
	if c := spec.IngressClassName; c != nil && *c != "" {
		errs = append(errs, invalidEach(fldPath.Child("ingressClassName"), *c, apivalidation.NameIsDNSSubdomain(*c, false))...)
	}
	return errs
}

func validatePath(p *networkingv1.HTTPIngressPath, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if p.PathType == nil {
		return append(errs, field.Required(fldPath.Child("pathType"), "pathType must be specified"))
	}
	pp := fldPath.Child("path")
	switch *p.PathType {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(p.Path, "/") {
			errs = append(errs, field.Invalid(pp, p.Path, "must be an absolute path"))
		}
		if p.Path != "" {
			for _, seq := range invalidPathSequences {
				if strings.Contains(p.Path, seq) {
					errs = append(errs, field.Invalid(pp, p.Path, fmt.Sprintf("must not contain '%s'", seq)))
				}
			}
			for _, suffix := range invalidPathSuffixes {
				if strings.HasSuffix(p.Path, suffix) {
					errs = append(errs, field.Invalid(pp, p.Path, fmt.Sprintf("cannot end with '%s'", suffix)))
				}
			}
		}
	case networkingv1.PathTypeImplementationSpecific:
		if p.Path != "" && !strings.HasPrefix(p.Path, "/") {
			errs = append(errs, field.Invalid(pp, p.Path, "must be an absolute path"))
		}
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("pathType"), *p.PathType, pathTypes))
	}
	return append(errs, validateBackend(&p.Backend, fldPath.Child("backend"))...)
}

func validateBackend(b *networkingv1.IngressBackend, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case b.Resource != nil && b.Service != nil:
		return append(errs, field.Invalid(fldPath, "", "cannot set both resource and service backends"))
	case b.Resource != nil:
		errs = append(errs, validateLocalReference(b.Resource.APIGroup, b.Resource.Kind, b.Resource.Name, fldPath.Child("resource"))...)
	case b.Service != nil:
		sp := fldPath.Child("service")
		if b.Service.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		} else {
			errs = append(errs, invalidEach(sp.Child("name"), b.Service.Name, apivalidation.NameIsDNS1035Label(b.Service.Name, false))...)
		}
		port := b.Service.Port
		switch {
		case port.Name != "" && port.Number != 0:
			errs = append(errs, field.Invalid(fldPath, "", "cannot set both port name & port number"))
		case port.Name != "":
			errs = append(errs, invalidEach(sp.Child("port", "name"), port.Name, utilvalidation.IsValidPortName(port.Name))...)
		case port.Number != 0:
			errs = append(errs, invalidEach(sp.Child("port", "number"), port.Number, utilvalidation.IsValidPortNum(int(port.Number)))...)
		default:
			errs = append(errs, field.Required(fldPath, "port name or number is required"))
		}
	default:
		errs = append(errs, field.Invalid(fldPath, "", "resource or service backend is required"))
	}
	return errs
}

func validateLoadBalancerStatus(s *networkingv1.IngressLoadBalancerStatus, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, in := range s.Ingress {
		ip := fldPath.Child("ingress").Index(i)
		if in.IP != "" {
			errs = append(errs, utilvalidation.IsValidIP(ip.Child("ip"), in.IP)...)
		}
		if in.Hostname != "" {
			errs = append(errs, invalidEach(ip.Child("hostname"), in.Hostname, content.IsDNS1123Subdomain(in.Hostname))...)
			if net.ParseIP(in.Hostname) != nil {
				errs = append(errs, field.Invalid(ip.Child("hostname"), in.Hostname, "must be a DNS name, not an IP address"))
			}
		}
	}
	return errs
}
