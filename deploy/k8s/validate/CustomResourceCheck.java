// Checks the custom resources of rendered manifests against the API models their operators
// read them with: Strimzi's (io.strimzi:api) for Kafka, KafkaNodePool and KafkaUser, the Prometheus
// operator's (io.fabric8:openshift-model-monitoring) for ServiceMonitor, PodMonitor and
// PrometheusRule. A resource passes when it binds to its model (types, enums, structure)
// and no field lands in the model's "unknown property" map.
//
// Run as a single-file program (Java 17):
//   java -cp 'LIBS/*' CustomResourceCheck.java manifests.yaml ...
// Prints one line per resource, "ok KIND NAME" or "error KIND NAME: WHY"; exit code 1 when
// a resource fails, 2 on bad usage.
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.beans.Introspector;
import java.beans.PropertyDescriptor;
import java.io.File;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

public class CustomResourceCheck {
    static final Map<String, String> MODELS = Map.of(
        "kafka.strimzi.io/v1beta2/Kafka", "io.strimzi.api.kafka.model.kafka.Kafka",
        "kafka.strimzi.io/v1beta2/KafkaNodePool", "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
        "kafka.strimzi.io/v1beta2/KafkaUser", "io.strimzi.api.kafka.model.user.KafkaUser",
        "monitoring.coreos.com/v1/ServiceMonitor", "io.fabric8.openshift.api.model.monitoring.v1.ServiceMonitor",
        "monitoring.coreos.com/v1/PodMonitor", "io.fabric8.openshift.api.model.monitoring.v1.PodMonitor",
        "monitoring.coreos.com/v1/PrometheusRule", "io.fabric8.openshift.api.model.monitoring.v1.PrometheusRule");

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: CustomResourceCheck manifests.yaml ...");
            System.exit(2);
        }
        ObjectMapper mapper = new ObjectMapper(new YAMLFactory())
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_NUMBERS_FOR_ENUMS);
        int failures = 0;
        for (String path : args) {
            try (MappingIterator<JsonNode> docs = mapper.readerFor(JsonNode.class).readValues(new File(path))) {
                while (docs.hasNext()) {
                    JsonNode doc = docs.next();
                    if (doc == null || doc.isNull() || doc.isMissingNode()) {
                        continue;
                    }
                    String kind = doc.path("kind").asText();
                    String name = doc.path("metadata").path("name").asText();
                    String model = MODELS.get(doc.path("apiVersion").asText() + "/" + kind);
                    if (model == null) {
                        continue;  // not a custom resource this program knows
                    }
                    List<String> problems = new ArrayList<>();
                    try {
                        Object resource = mapper.treeToValue(doc, Class.forName(model));
                        unknown(resource, "", problems, new IdentityHashMap<>());
                        lost(doc, mapper.valueToTree(resource), "", problems);
                    } catch (Exception e) {
                        problems.add(e.getMessage().split("\n")[0]);
                    }
                    if (problems.isEmpty()) {
                        System.out.println("ok " + kind + " " + name);
                    } else {
                        failures++;
                        System.out.println("error " + kind + " " + name + ": " + String.join("; ", problems));
                    }
                }
            }
        }
        System.exit(failures == 0 ? 0 : 1);
    }

    /** Values the model did not keep: an enum value it does not know reads as null. */
    static void lost(JsonNode given, JsonNode kept, String path, List<String> problems) {
        if (given.isObject()) {
            given.fields().forEachRemaining(e -> lost(
                e.getValue(), kept == null ? null : kept.get(e.getKey()),
                path + (path.isEmpty() ? "" : ".") + e.getKey(), problems));
        } else if (given.isArray()) {
            for (int i = 0; i < given.size(); i++) {
                lost(given.get(i), kept == null ? null : kept.get(i), path + "[" + i + "]", problems);
            }
        } else if (given.isNull() || isDefault(given) && (kept == null || kept.isNull())) {
            return;  // models leave out nulls and defaults (false, 0) when they write
        } else if (kept == null || kept.isNull() || !kept.asText().equals(given.asText())) {
            problems.add(path + ": value " + given + " not accepted");
        }
    }

    static boolean isDefault(JsonNode value) {
        return value.isBoolean() && !value.asBoolean() || value.isNumber() && value.asDouble() == 0;
    }

    /** Fields that bound to no model property: the models keep them in additionalProperties. */
    static void unknown(Object value, String path, List<String> problems, IdentityHashMap<Object, Boolean> seen)
            throws Exception {
        if (value == null || seen.containsKey(value)) {
            return;
        }
        if (value instanceof Collection<?> items) {
            int i = 0;
            for (Object item : items) {
                unknown(item, path + "[" + i++ + "]", problems, seen);
            }
            return;
        }
        if (value instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> e : map.entrySet()) {
                unknown(e.getValue(), path + "." + e.getKey(), problems, seen);
            }
            return;
        }
        String pkg = value.getClass().getPackageName();
        if (!pkg.startsWith("io.strimzi") && !pkg.startsWith("io.fabric8")) {
            return;
        }
        seen.put(value, Boolean.TRUE);
        for (PropertyDescriptor p : Introspector.getBeanInfo(value.getClass()).getPropertyDescriptors()) {
            Method getter = p.getReadMethod();
            if (getter == null || getter.getParameterCount() != 0 || p.getName().equals("class")) {
                continue;
            }
            Object child = getter.invoke(value);
            if (p.getName().equals("additionalProperties")) {
                if (child instanceof Map<?, ?> extra && !extra.isEmpty()) {
                    for (Object key : extra.keySet()) {
                        problems.add("unknown field " + (path.isEmpty() ? "" : path + ".") + key);
                    }
                }
                continue;
            }
            unknown(child, path + (path.isEmpty() ? "" : ".") + p.getName(), problems, seen);
        }
    }
}
