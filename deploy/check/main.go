// Command check validates FrameFleet's deployment material offline, with the libraries the real tools use:
//
//   - every YAML file under the folder parses;
//   - every Kustomize folder builds (sigs.k8s.io/kustomize/api, what `kubectl apply -k` runs), and every object it
//     emits decodes strictly into its typed Kubernetes struct (k8s.io/api: an unknown or misspelt field, a wrong type
//     or a bad quantity is an error), plus the API server's cheap rules (names, env names, port names, selectors);
//   - compose.yaml loads with compose-go (the Compose Specification schema, interpolation, depends_on consistency);
//   - every Dockerfile parses with BuildKit's parser and passes its built-in checks (`docker build --check` rules
//     that need no registry), every base image has a pinned tag, and the final stage runs as a non-root user.
//
// Usage: check <deploy folder>. Prints a JSON summary (the built objects, the compose project, each Dockerfile's
// final stage) on stdout for the tests to inspect; problems go to stderr, one a line, and the exit status is 1.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	goyaml "sigs.k8s.io/yaml/goyaml.v3"
	"sigs.k8s.io/yaml"
)

type summary struct {
	YAML        []yamlFile                  `json:"yaml"`
	Kustomize   map[string][]map[string]any `json:"kustomize"`
	Compose     json.RawMessage             `json:"compose,omitempty"`
	Dockerfiles map[string]dockerfile       `json:"dockerfiles"`
}

type yamlFile struct {
	Path      string `json:"path"`
	Documents int    `json:"documents"`
}

type dockerfile struct {
	Bases       []string `json:"bases"`
	User        string   `json:"user"`
	Healthcheck []string `json:"healthcheck"`
	Entrypoint  []string `json:"entrypoint"`
	Env         []string `json:"env"`
	Expose      []string `json:"expose"`
}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: check <deploy folder>")
		os.Exit(2)
	}
	root, err := filepath.Abs(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var errs problems
	out := summary{Kustomize: map[string][]map[string]any{}, Dockerfiles: map[string]dockerfile{}}
	var kustomizations, dockerfiles, composeFiles []string
	walkErr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if d.Name() == "node_modules" || (strings.HasPrefix(d.Name(), ".") && rel != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		switch {
		case strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"):
			n, err := parseYAML(p)
			if err != nil {
				errs.add("%s: not valid YAML: %v", rel, err)
			}
			out.YAML = append(out.YAML, yamlFile{Path: rel, Documents: n})
			if name == "kustomization.yaml" {
				kustomizations = append(kustomizations, filepath.Dir(p))
			}
			if name == "compose.yaml" {
				composeFiles = append(composeFiles, p)
			}
		case name == "Dockerfile" || strings.HasSuffix(name, ".Dockerfile"):
			dockerfiles = append(dockerfiles, p)
		}
		return nil
	})
	if walkErr != nil {
		errs.add("reading %s: %v", root, walkErr)
	}
	for _, dir := range kustomizations {
		rel, _ := filepath.Rel(root, dir)
		out.Kustomize[rel] = buildKustomization(dir, rel, &errs)
	}
	for _, f := range composeFiles {
		rel, _ := filepath.Rel(root, f)
		out.Compose = loadCompose(f, rel, &errs)
	}
	for _, f := range dockerfiles {
		rel, _ := filepath.Rel(root, f)
		out.Dockerfiles[rel] = checkDockerfile(f, rel, &errs)
	}
	if len(kustomizations) == 0 {
		errs.add("no kustomization.yaml under %s", root)
	}
	if len(dockerfiles) == 0 {
		errs.add("no Dockerfile under %s", root)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		errs.add("writing the summary: %v", err)
	}
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, e)
	}
	if len(errs) > 0 {
		os.Exit(1)
	}
}

// parseYAML decodes every document of a file (strictly: duplicate keys are errors) and counts them.
func parseYAML(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	dec := goyaml.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// The kinds the manifests may use, each with its typed struct (strict decoding needs the struct).
func typedObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	}
	return nil
}

func buildKustomization(dir, rel string, errs *problems) []map[string]any {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		errs.add("%s: kustomize build failed: %v", rel, err)
		return nil
	}
	var objects []map[string]any
	for _, r := range resMap.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			errs.add("%s: %s: %v", rel, r.CurId(), err)
			continue
		}
		m, err := r.Map()
		if err != nil {
			errs.add("%s: %s: %v", rel, r.CurId(), err)
			continue
		}
		objects = append(objects, m)
		where := fmt.Sprintf("%s: %s/%s %s", rel, r.GetApiVersion(), r.GetKind(), r.GetName())
		obj := typedObject(r.GetApiVersion(), r.GetKind())
		if obj == nil {
			errs.add("%s: kind not known to this check (add it to typedObject)", where)
			continue
		}
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			errs.add("%s: does not match the Kubernetes schema: %v", where, err)
			continue
		}
		validateObject(where, obj, errs)
	}
	return objects
}

// validateObject applies some of the API server's rules that a typed decode cannot see.
func validateObject(where string, obj any, errs *problems) {
	meta := func(m metav1.ObjectMeta) {
		for _, msg := range validation.IsDNS1123Subdomain(m.Name) {
			errs.add("%s: metadata.name: %s", where, msg)
		}
		for k, v := range m.Labels {
			for _, msg := range validation.IsQualifiedName(k) {
				errs.add("%s: label key %q: %s", where, k, msg)
			}
			for _, msg := range validation.IsValidLabelValue(v) {
				errs.add("%s: label %q value: %s", where, k, msg)
			}
		}
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		meta(o.ObjectMeta)
		sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector)
		if err != nil || o.Spec.Selector == nil {
			errs.add("%s: spec.selector is missing or invalid: %v", where, err)
		} else if !sel.Matches(labels.Set(o.Spec.Template.Labels)) {
			errs.add("%s: spec.selector does not match spec.template.metadata.labels", where)
		}
		validatePod(where, o.Spec.Template.Spec, errs)
	case *corev1.Service:
		meta(o.ObjectMeta)
		for _, p := range o.Spec.Ports {
			if p.Port < 1 || p.Port > 65535 {
				errs.add("%s: port %d out of range", where, p.Port)
			}
		}
	case *corev1.ConfigMap:
		meta(o.ObjectMeta)
		for k := range o.Data {
			for _, msg := range validation.IsConfigMapKey(k) {
				errs.add("%s: data key %q: %s", where, k, msg)
			}
		}
	case *policyv1.PodDisruptionBudget:
		meta(o.ObjectMeta)
		if o.Spec.Selector == nil {
			errs.add("%s: spec.selector is required", where)
		}
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			errs.add("%s: set exactly one of spec.minAvailable and spec.maxUnavailable", where)
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		meta(o.ObjectMeta)
		if o.Spec.MinReplicas != nil && *o.Spec.MinReplicas > o.Spec.MaxReplicas {
			errs.add("%s: minReplicas is above maxReplicas", where)
		}
	case *corev1.Namespace:
		for _, msg := range validation.IsDNS1123Label(o.Name) {
			errs.add("%s: metadata.name: %s", where, msg)
		}
	}
}

func validatePod(where string, pod corev1.PodSpec, errs *problems) {
	if len(pod.Containers) == 0 {
		errs.add("%s: the pod has no containers", where)
	}
	for _, c := range pod.Containers {
		cw := fmt.Sprintf("%s: container %s", where, c.Name)
		if c.Image == "" {
			errs.add("%s: image is required", cw)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			if p.Name != "" {
				for _, msg := range validation.IsValidPortName(p.Name) {
					errs.add("%s: port name %q: %s", cw, p.Name, msg)
				}
				ports[p.Name] = true
			}
		}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				errs.add("%s: env %q: %s", cw, e.Name, msg)
			}
			if e.Value != "" && e.ValueFrom != nil {
				errs.add("%s: env %q sets both value and valueFrom", cw, e.Name)
			}
		}
		for name, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			if p == nil {
				continue
			}
			handlers := 0
			if p.HTTPGet != nil {
				handlers++
				if p.HTTPGet.Port.StrVal != "" && !ports[p.HTTPGet.Port.StrVal] {
					errs.add("%s: %s names port %q, which the container does not declare", cw, name, p.HTTPGet.Port.StrVal)
				}
			}
			if p.GRPC != nil {
				handlers++
			}
			if p.TCPSocket != nil {
				handlers++
			}
			if p.Exec != nil {
				handlers++
			}
			if handlers != 1 {
				errs.add("%s: %s must have exactly one handler, has %d", cw, name, handlers)
			}
		}
	}
}

func loadCompose(path, rel string, errs *problems) json.RawMessage {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		errs.add("%s: %v", rel, err)
		return nil
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: data}},
		Environment: env,
	}
	project, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("framefleet", true)
	})
	if err != nil {
		errs.add("%s: not a valid compose file: %v", rel, err)
		return nil
	}
	j, err := project.MarshalJSON()
	if err != nil {
		errs.add("%s: %v", rel, err)
		return nil
	}
	return j
}

func checkDockerfile(path, rel string, errs *problems) dockerfile {
	var info dockerfile
	data, err := os.ReadFile(path)
	if err != nil {
		errs.add("%s: %v", rel, err)
		return info
	}
	ast, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		errs.add("%s: does not parse: %v", rel, err)
		return info
	}
	for _, w := range ast.Warnings {
		errs.add("%s:%d: %s", rel, w.Location.Start.Line, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		errs.add("%s:%d: %s: %s", rel, line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		errs.add("%s: %v", rel, err)
		return info
	}
	if len(stages) == 0 {
		errs.add("%s: no FROM", rel)
		return info
	}
	// Base image names may come from ARGs declared before the first FROM: resolve them with their defaults.
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	lex := shell.NewLex('\\')
	stageNames := map[string]bool{}
	for _, s := range stages {
		base, _, err := lex.ProcessWord(s.BaseName, shell.EnvsFromSlice(envSlice(args)))
		if err != nil {
			errs.add("%s: FROM %s: %v", rel, s.BaseName, err)
			continue
		}
		if !stageNames[base] && base != "scratch" {
			info.Bases = append(info.Bases, base)
			if msg := pinnedTagProblem(base); msg != "" {
				errs.add("%s: FROM %s: %s", rel, base, msg)
			}
		}
		if s.Name != "" {
			stageNames[s.Name] = true
		}
	}
	final := stages[len(stages)-1]
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			info.User = c.User
		case *instructions.HealthCheckCommand:
			info.Healthcheck = c.Health.Test
		case *instructions.EntrypointCommand:
			info.Entrypoint = c.CmdLine
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				info.Env = append(info.Env, kv.Key)
			}
		case *instructions.ExposeCommand:
			info.Expose = append(info.Expose, c.Ports...)
		}
	}
	sort.Strings(info.Env)
	if u := strings.Split(info.User, ":")[0]; u == "" || u == "0" || u == "root" {
		errs.add("%s: the final stage must set USER to a non-root user (got %q)", rel, info.User)
	}
	return info
}

func envSlice(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// pinnedTagProblem says what is wrong with an image reference that is not pinned to a version tag ("" if it is).
func pinnedTagProblem(ref string) string {
	name := ref
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	slash := strings.LastIndex(name, "/")
	colon := strings.LastIndex(name, ":")
	if colon <= slash {
		return "no tag: pin a version tag (and a digest for reproducible builds)"
	}
	if tag := name[colon+1:]; tag == "latest" {
		return "the latest tag is not a pin: use a version tag"
	}
	return ""
}
