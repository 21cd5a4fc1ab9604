import { describeCompleteness } from './completenessProperty';

// The property and its generators: ./completenessProperty.ts (shard 1 of its cases).
describeCompleteness(0);
