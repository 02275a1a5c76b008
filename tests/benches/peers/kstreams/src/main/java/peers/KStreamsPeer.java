package peers;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Kafka Streams side of the benchmark.
 *
 * usage: KStreamsPeer upper|count BOOTSTRAP IN OUT APP_ID [eos] [threads]
 *   upper: IN -> value.toUpperCase() -> OUT (stateless)
 *   count: IN grouped by its key (no repartition) -> count in a RocksDB store "counts" ->
 *          OUT as (key, decimal count); the record cache is off, so every update is emitted.
 *   eos:   processing.guarantee=exactly_once_v2 (otherwise at_least_once)
 * Prints "FIRST <epoch ms>" on stderr when the first record is handled, "READY" when RUNNING.
 */
public final class KStreamsPeer {
    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println("usage: KStreamsPeer upper|count BOOTSTRAP IN OUT APP_ID [eos] [threads]");
            System.exit(2);
        }
        String mode = args[0];
        boolean eos = args.length > 5 && args[5].equals("eos");
        int threads = args.length > 6 ? Integer.parseInt(args[6]) : 1;

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[4]);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                eos ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        // Emit every count update at once instead of once per commit from the record cache.
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
        p.put(StreamsConfig.STATE_DIR_CONFIG,
                System.getProperty("java.io.tmpdir") + "/kstreams-peer-" + args[4]);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Kafka Streams' own producer default is linger.ms=100: -Dpeer.linger.ms=N overrides it
        // (and -Dpeer.commit.ms=N the commit interval: 30 s at-least-once, 100 ms exactly-once).
        Integer linger = Integer.getInteger("peer.linger.ms");
        if (linger != null) p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), linger);
        Integer commit = Integer.getInteger("peer.commit.ms");
        if (commit != null) p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commit);

        AtomicBoolean first = new AtomicBoolean(true);
        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> in = b.stream(args[2], Consumed.with(Serdes.String(), Serdes.String()))
                .peek((k, v) -> {
                    if (first.compareAndSet(true, false)) {
                        System.err.println("FIRST " + System.currentTimeMillis());
                    }
                });
        if (mode.equals("upper")) {
            in.mapValues(v -> v == null ? null : v.toUpperCase())
              .to(args[3], Produced.with(Serdes.String(), Serdes.String()));
        } else if (mode.equals("count")) {
            in.groupByKey()
              .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts"))
              .toStream()
              .mapValues(n -> Long.toString(n))
              .to(args[3], Produced.with(Serdes.String(), Serdes.String()));
        } else {
            System.err.println("unknown mode " + mode);
            System.exit(2);
        }

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) System.err.println("READY " + System.currentTimeMillis());
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) done.countDown();
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            done.countDown();
        }));
        streams.start();
        done.await();
    }
}
